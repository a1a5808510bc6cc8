import { InvalidPageTokenError, ValidationError } from "./errors.js";
import type { NotificationFeed } from "./feed.js";
import type { Notification } from "./notification.js";
import type { NotificationCursor, NotificationRepository } from "./repository.js";

// 20 and 100: ListNotifications' default and maximum page sizes, from the contract.
const DEFAULT_PAGE_SIZE = 20;
const MAX_PAGE_SIZE = 100;
// Watchers re-read every second for notifications another replica wrote (local ones wake them at once).
const WATCH_POLL_MS = 1_000;
// A notification can commit a little after its created_at; re-reading the last 5 s (deduplicated
// by id) catches one that committed late without resending anything.
const LOOKBACK_MS = 5_000;
// Rows per watch read. Reads restart 5 s back, so one customer getting more than this many
// notifications within 5 s would stall the stream: far beyond a shop's one per order step.
const WATCH_BATCH = 500;

/** A page of notifications and where the next one starts. */
export interface NotificationPage {
  notifications: Notification[];
  nextPageToken: string;
}

/** The notifications use cases: listing and watching a customer's notifications. */
export class Notifications {
  constructor(
    private readonly repo: NotificationRepository,
    private readonly feed: NotificationFeed,
  ) {}

  /** A customer's notifications, newest first. */
  async list(customerId: string, pageSize: number, pageToken: string): Promise<NotificationPage> {
    requireCustomer(customerId);
    if (!Number.isInteger(pageSize) || pageSize < 0) throw new ValidationError("page_size", `page_size ${pageSize} must not be negative`);
    const limit = pageSize === 0 ? DEFAULT_PAGE_SIZE : Math.min(pageSize, MAX_PAGE_SIZE);
    const after = pageToken === "" ? undefined : decodePageToken(pageToken, customerId);
    const rows = await this.repo.listByCustomer(customerId, after, limit + 1);
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return { notifications: page, nextPageToken: rows.length > limit ? encodePageToken(customerId, last) : "" };
  }

  /** Notifications created after the call, as they come, until `signal` aborts. */
  async *watch(customerId: string, signal: AbortSignal): AsyncGenerator<Notification> {
    requireCustomer(customerId);
    const openedAt = Date.now();
    const sent = new Map<string, number>();
    let newest = openedAt;
    while (!signal.aborted) {
      const since = Math.max(openedAt, newest - LOOKBACK_MS);
      const wake = this.feed.next(customerId, WATCH_POLL_MS, signal);
      for (const n of await this.repo.listCreatedSince(customerId, since, WATCH_BATCH)) {
        if (sent.has(n.id)) continue;
        sent.set(n.id, n.createdAt);
        newest = Math.max(newest, n.createdAt);
        yield n;
      }
      for (const [id, at] of sent) if (at < newest - LOOKBACK_MS) sent.delete(id);
      await wake;
    }
  }
}

function requireCustomer(customerId: string): void {
  if (customerId === "") throw new ValidationError("customer_id", "customer_id is required");
}

function encodePageToken(customerId: string, n: Notification): string {
  return Buffer.from(JSON.stringify({ c: customerId, t: n.createdAt, i: n.id })).toString("base64url");
}

function decodePageToken(token: string, customerId: string): NotificationCursor {
  let p: { c?: unknown; t?: unknown; i?: unknown };
  try {
    p = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    throw new InvalidPageTokenError("page_token is malformed; restart from the first page");
  }
  if (typeof p !== "object" || p === null || typeof p.c !== "string" || typeof p.t !== "number" || typeof p.i !== "string") {
    throw new InvalidPageTokenError("page_token is malformed; restart from the first page");
  }
  if (p.c !== customerId) throw new InvalidPageTokenError("page_token belongs to another customer; restart from the first page");
  return { createdAt: p.t, id: p.i };
}
