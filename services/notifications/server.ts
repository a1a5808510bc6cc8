import { NotificationService } from "../../gen/notifications/v1/notifications_pb.js";
import type { Database } from "../../mesh/db/index.js";
import { createMeshServer, service, type MeshServer } from "../../mesh/server/index.js";
import { SqlNotificationRepository } from "./data/notification-repository.js";
import { NotificationFeed } from "./domain/feed.js";
import { Notifications } from "./domain/notifications.js";
import { routes } from "./routes.js";

/** What the notifications server needs: its migrated database and the feed its consumers wake. */
export interface NotificationsDeps {
  database: Database;
  feed: NotificationFeed;
}

/** Builds the notifications gRPC server, unstarted. */
export function build(deps: NotificationsDeps): MeshServer {
  const notifications = new Notifications(new SqlNotificationRepository(deps.database), deps.feed);
  return createMeshServer({
    serviceName: "notifications",
    services: [service(NotificationService, routes(notifications))],
  });
}
