import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { ErrorReason, ErrorReasonSchema, NotificationKind, NotificationSchema, NotificationService, type Notification as NotificationMessage } from "../../gen/notifications/v1/notifications_pb.js";
import { errorWithReason } from "../../mesh/grpc/index.js";
import { DomainError, InvalidPageTokenError, ValidationError } from "./domain/errors.js";
import type { Notification } from "./domain/notification.js";
import type { Notifications } from "./domain/notifications.js";

/** The NotificationService handlers. */
export function routes(notifications: Notifications): ServiceImpl<typeof NotificationService> {
  return {
    async listNotifications(req) {
      try {
        const page = await notifications.list(req.customerId, req.pageSize, req.pageToken);
        return { notifications: page.notifications.map(toProto), nextPageToken: page.nextPageToken };
      } catch (err) {
        throw toConnectError(err);
      }
    },
    async *watchNotifications(req, ctx) {
      try {
        for await (const n of notifications.watch(req.customerId, ctx.signal)) yield { notification: toProto(n) };
      } catch (err) {
        throw toConnectError(err);
      }
    },
  };
}

/** The domain notification as notifications.v1.Notification. */
export function toProto(n: Notification): NotificationMessage {
  return create(NotificationSchema, {
    id: n.id,
    customerId: n.customerId,
    kind: NotificationKind[n.kind],
    title: n.title,
    body: n.body,
    orderId: n.orderId,
    createTime: timestampFromMs(n.createdAt),
    sourceEventId: n.sourceEventId,
  });
}

function toConnectError(err: unknown): unknown {
  if (err instanceof InvalidPageTokenError) {
    return errorWithReason(err.message, Code.InvalidArgument, ErrorReasonSchema, ErrorReason.INVALID_PAGE_TOKEN, err.metadata);
  }
  if (err instanceof ValidationError) return new ConnectError(err.message, Code.InvalidArgument);
  if (err instanceof DomainError) return new ConnectError(err.message, Code.Internal);
  return err;
}
