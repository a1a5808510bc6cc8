import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { ErrorDetailSchema } from "../../gen/meshwork/v1/errors_pb.js";
import { DeclineReason, PaymentService, PaymentStatus } from "../../gen/payments/v1/payments_pb.js";
import { createMeshTransport, staticEndpoints, type MeshTransport } from "../../mesh/client/index.js";
import { openDatabase, type Database } from "../../mesh/db/index.js";
import { createScratchDatabase, DIALECTS, type ScratchDatabase } from "../../mesh/db/testing.js";
import type { MeshServer } from "../../mesh/server/index.js";
import { migratePayments } from "./data/migrations.js";
import { SqlPaymentRepository } from "./data/payment-repository.js";
import { Payments } from "./domain/payments.js";
import { SimulatedProcessor, TEST_CARDS } from "./domain/processor.js";
import { build } from "./server.js";

/** The code, ErrorDetail reason and metadata a call failed with. */
async function failure(p: Promise<unknown>): Promise<{ code: Code; reason?: string; metadata?: Record<string, string> }> {
  try {
    await p;
  } catch (err) {
    const ce = ConnectError.from(err);
    const detail = ce.findDetails(ErrorDetailSchema)[0];
    return detail ? { code: ce.code, reason: detail.reason, metadata: detail.metadata } : { code: ce.code };
  }
  throw new Error("call succeeded; expected an error");
}

const eur = (amountMinor: number) => ({ currencyCode: "EUR", amountMinor: BigInt(amountMinor) });
const SLOW_MS = 1_500;

/** The fields of an AuthorizeRequest. */
interface AuthInit {
  idempotencyKey: string;
  orderId: string;
  customerId: string;
  amount?: { currencyCode: string; amountMinor: bigint };
  cardNumber: string;
}

describe.each(DIALECTS)("payments over gRPC on %s", (dialect) => {
  let scratch: ScratchDatabase;
  let database: Database;
  let payments: Payments;
  let server: MeshServer;
  let transport: MeshTransport;
  let client: Client<typeof PaymentService>;
  let n = 0;
  /** An Authorize request with a fresh key and order. */
  const authReq = (over: Partial<AuthInit> = {}): AuthInit => {
    n++;
    return { idempotencyKey: `k-${n}`, orderId: `o-${n}`, customerId: "c-1", amount: eur(4_200), cardNumber: TEST_CARDS.APPROVED, ...over };
  };

  beforeAll(async () => {
    scratch = await createScratchDatabase(dialect);
    database = await openDatabase(scratch.url);
    await migratePayments(database);
    payments = new Payments(new SqlPaymentRepository(database), new SimulatedProcessor({ slowDelayMs: SLOW_MS }));
    server = build({ payments });
    const port = await server.listen(0, "127.0.0.1");
    transport = createMeshTransport({ endpoints: staticEndpoints(`127.0.0.1:${port}`), serviceName: "payments" });
    client = createClient(PaymentService, transport);
  });
  afterAll(async () => {
    transport?.close();
    server?.forceShutdown();
    await database?.close();
    await scratch?.drop();
  });

  it("authorizes the approved card and returns the payment by id", async () => {
    const { payment } = await client.authorize(authReq());
    expect(payment).toMatchObject({ status: PaymentStatus.AUTHORIZED, cardLast4: "4242", declineReason: DeclineReason.UNSPECIFIED, customerId: "c-1" });
    expect(payment?.amount).toMatchObject(eur(4_200));
    expect(payment?.refundedAmount).toMatchObject(eur(0));
    expect((await client.getPayment({ paymentId: payment!.id })).payment).toEqual(payment);
  });

  it("returns declines and processing errors as results, not errors", async () => {
    const cases: Array<[string, PaymentStatus, DeclineReason]> = [
      [TEST_CARDS.DECLINED_GENERIC, PaymentStatus.DECLINED, DeclineReason.GENERIC],
      [TEST_CARDS.DECLINED_INSUFFICIENT_FUNDS, PaymentStatus.DECLINED, DeclineReason.INSUFFICIENT_FUNDS],
      [TEST_CARDS.DECLINED_EXPIRED_CARD, PaymentStatus.DECLINED, DeclineReason.EXPIRED_CARD],
      [TEST_CARDS.PROCESSING_ERROR, PaymentStatus.FAILED, DeclineReason.PROCESSING_ERROR],
    ];
    for (const [cardNumber, status, declineReason] of cases) {
      expect((await client.authorize(authReq({ cardNumber }))).payment).toMatchObject({ status, declineReason });
    }
  });

  it("rejects invalid input with InvalidArgument and the contract's reasons", async () => {
    const invalidAmount = { code: Code.InvalidArgument, reason: "ERROR_REASON_INVALID_AMOUNT" };
    expect(await failure(client.authorize(authReq({ amount: undefined })))).toMatchObject(invalidAmount);
    expect(await failure(client.authorize(authReq({ amount: eur(0) })))).toMatchObject(invalidAmount);
    expect(await failure(client.authorize(authReq({ amount: eur(-1) })))).toMatchObject(invalidAmount);
    expect(await failure(client.authorize(authReq({ amount: { currencyCode: "eu", amountMinor: 5n } })))).toMatchObject(invalidAmount);
    expect(await failure(client.authorize(authReq({ amount: { currencyCode: "EUR", amountMinor: 2n ** 62n } })))).toMatchObject(invalidAmount);
    const invalidCard = { code: Code.InvalidArgument, reason: "ERROR_REASON_INVALID_CARD" };
    expect(await failure(client.authorize(authReq({ cardNumber: "4242424242424241" })))).toMatchObject(invalidCard);
    expect(await failure(client.authorize(authReq({ cardNumber: "4242 4242 4242 4242" })))).toMatchObject(invalidCard);
    expect((await failure(client.authorize(authReq({ idempotencyKey: "" })))).code).toBe(Code.InvalidArgument);
    expect((await failure(client.authorize(authReq({ orderId: "" })))).code).toBe(Code.InvalidArgument);
    expect((await failure(client.capture({ idempotencyKey: "x", paymentId: "" }))).code).toBe(Code.InvalidArgument);
    expect((await failure(client.getPayment({ paymentId: "" }))).code).toBe(Code.InvalidArgument);
    expect(await failure(client.getPayment({ paymentId: "pay_nope" }))).toMatchObject({ code: Code.NotFound, reason: "ERROR_REASON_PAYMENT_NOT_FOUND" });
    expect(await failure(client.capture({ idempotencyKey: "x", paymentId: "pay_nope" }))).toMatchObject({ code: Code.NotFound, reason: "ERROR_REASON_PAYMENT_NOT_FOUND" });
  });

  it("answers a repeated key with the first result, executed once, and refuses it for another request", async () => {
    const req = authReq();
    const first = await client.authorize(req);
    const repeats = await Promise.all(Array.from({ length: 10 }, () => client.authorize(req)));
    expect(repeats.every((r) => r.payment?.id === first.payment?.id)).toBe(true);
    expect(await database.db.selectFrom("payments").select("id").where("order_id", "=", req.orderId).execute()).toHaveLength(1);
    expect(await failure(client.authorize({ ...req, amount: eur(1) }))).toMatchObject({ code: Code.AlreadyExists, reason: "ERROR_REASON_IDEMPOTENCY_KEY_REUSED" });

    const concurrent = authReq();
    const racing = await Promise.all(Array.from({ length: 10 }, () => client.authorize(concurrent)));
    expect(new Set(racing.map((r) => r.payment?.id)).size).toBe(1);
  });

  it("enforces the payment life cycle with INVALID_PAYMENT_STATE", async () => {
    const invalidState = { code: Code.FailedPrecondition, reason: "ERROR_REASON_INVALID_PAYMENT_STATE" };
    const declined = (await client.authorize(authReq({ cardNumber: TEST_CARDS.DECLINED_GENERIC }))).payment!;
    expect(await failure(client.capture({ idempotencyKey: "d-c", paymentId: declined.id }))).toMatchObject(invalidState);
    expect(await failure(client.void({ idempotencyKey: "d-v", paymentId: declined.id }))).toMatchObject(invalidState);

    const p = (await client.authorize(authReq())).payment!;
    expect(await failure(client.refund({ idempotencyKey: "p-r0", paymentId: p.id }))).toMatchObject(invalidState);
    expect((await client.capture({ idempotencyKey: "p-c", paymentId: p.id })).payment?.status).toBe(PaymentStatus.CAPTURED);
    expect((await client.capture({ idempotencyKey: "p-c2", paymentId: p.id })).payment?.status).toBe(PaymentStatus.CAPTURED);
    expect(await failure(client.void({ idempotencyKey: "p-v", paymentId: p.id }))).toMatchObject({ ...invalidState, metadata: { payment_id: p.id, status: "CAPTURED" } });

    const v = (await client.authorize(authReq())).payment!;
    expect((await client.void({ idempotencyKey: "v-v", paymentId: v.id })).payment?.status).toBe(PaymentStatus.VOIDED);
    expect((await client.void({ idempotencyKey: "v-v2", paymentId: v.id })).payment?.status).toBe(PaymentStatus.VOIDED);
    expect(await failure(client.capture({ idempotencyKey: "v-c", paymentId: v.id }))).toMatchObject(invalidState);
  });

  it("refunds up to the captured amount, replaying a refund under its key", async () => {
    const p = (await client.authorize(authReq({ amount: eur(1_000) }))).payment!;
    await client.capture({ idempotencyKey: `${p.id}-c`, paymentId: p.id });
    expect(await failure(client.refund({ idempotencyKey: `${p.id}-r0`, paymentId: p.id, amount: eur(1_001) }))).toEqual({
      code: Code.FailedPrecondition,
      reason: "ERROR_REASON_REFUND_EXCEEDS_CAPTURED",
      metadata: { payment_id: p.id, refundable_amount_minor: "1000" },
    });
    expect(await failure(client.refund({ idempotencyKey: `${p.id}-r0`, paymentId: p.id, amount: { currencyCode: "USD", amountMinor: 1n } }))).toMatchObject({
      code: Code.InvalidArgument,
      reason: "ERROR_REASON_CURRENCY_MISMATCH",
    });
    expect(await failure(client.refund({ idempotencyKey: `${p.id}-r0`, paymentId: p.id, amount: eur(0) }))).toMatchObject({
      code: Code.InvalidArgument,
      reason: "ERROR_REASON_INVALID_AMOUNT",
    });
    const part = await client.refund({ idempotencyKey: `${p.id}-r1`, paymentId: p.id, amount: eur(250), reason: "scratched" });
    expect(part.payment).toMatchObject({ status: PaymentStatus.PARTIALLY_REFUNDED, refundedAmount: eur(250) });
    expect(part.amount).toMatchObject(eur(250));
    expect(await client.refund({ idempotencyKey: `${p.id}-r1`, paymentId: p.id, amount: eur(250), reason: "scratched" })).toEqual(part);
    const rest = await client.refund({ idempotencyKey: `${p.id}-r2`, paymentId: p.id, reason: "returned" });
    expect(rest.refundId).not.toBe(part.refundId);
    expect(rest.amount).toMatchObject(eur(750));
    expect(rest.payment).toMatchObject({ status: PaymentStatus.REFUNDED, refundedAmount: eur(1_000) });
  });

  it("lets the slow card run into the caller's deadline; a retry under the same key then succeeds once", async () => {
    const req = authReq({ cardNumber: TEST_CARDS.SLOW });
    const started = Date.now();
    expect((await failure(client.authorize(req, { timeoutMs: 300 }))).code).toBe(Code.DeadlineExceeded);
    expect(Date.now() - started).toBeLessThan(SLOW_MS);
    const { payment } = await client.authorize(req, { timeoutMs: 5_000 });
    expect(payment?.status).toBe(PaymentStatus.AUTHORIZED);
    expect(await database.db.selectFrom("payments").select("id").where("order_id", "=", req.orderId).execute()).toHaveLength(1);
  });

  it("leaves a balanced ledger after every operation above", async () => {
    expect(await payments.ledgerBalance()).toEqual({ balanced: true, totals: { EUR: 0 }, unbalancedTransactions: [], mismatchedPayments: [] });
  });
});
