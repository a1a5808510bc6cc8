// Test support (not a test file): error and outbox helpers shared by the orders tests.
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { sql } from "kysely";
import { EventEnvelopeSchema } from "../../../gen/meshwork/v1/event_pb.js";
import { ErrorDetailSchema } from "../../../gen/meshwork/v1/errors_pb.js";
import type { Database } from "../../../mesh/db/index.js";
import { OUTBOX_TABLE } from "../../../mesh/events/index.js";

/** What a failed call answered: code, reason and metadata of its meshwork.v1.ErrorDetail. */
export interface CallFailure {
  code: Code;
  reason: string;
  domain: string;
  metadata: Record<string, string>;
}

/** Awaits a call that must fail and returns its code and error detail. */
export async function failureOf(call: Promise<unknown>): Promise<CallFailure> {
  try {
    await call;
  } catch (err) {
    const ce = ConnectError.from(err);
    const detail = ce.findDetails(ErrorDetailSchema)[0];
    return { code: ce.code, reason: detail?.reason ?? "", domain: detail?.domain ?? "", metadata: { ...(detail?.metadata ?? {}) } };
  }
  throw new Error("the call succeeded but was expected to fail");
}

/** Event types in the outbox for one order, in the order they were written. */
export async function outboxTypes(database: Database, orderId: string): Promise<string[]> {
  // Insertion order: PostgreSQL numbers outbox rows in `seq`, SQLite in its rowid.
  const rows = await database.db
    .selectFrom(OUTBOX_TABLE)
    .select("payload")
    .orderBy(sql.ref(database.dialect === "postgres" ? "seq" : "rowid"))
    .execute();
  return rows
    .map((r) => fromBinary(EventEnvelopeSchema, new Uint8Array(r.payload as Buffer)))
    .filter((e) => e.subject === orderId)
    .map((e) => e.type);
}
