import type { Notification } from "./notification.js";

/** Where a newest-first listing continues: after this (createdAt, id). */
export interface NotificationCursor {
  createdAt: number;
  id: string;
}

/** Storage of notifications. Writes happen in the event consumer's inbox transaction (see data/). */
export interface NotificationRepository {
  /** A customer's notifications newest first, strictly after `after`. */
  listByCustomer(customerId: string, after: NotificationCursor | undefined, limit: number): Promise<Notification[]>;
  /** A customer's notifications created at or after `since` (epoch ms), oldest first. */
  listCreatedSince(customerId: string, since: number, limit: number): Promise<Notification[]>;
}
