import { errorWithReason } from "../../mesh/grpc/index.js";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { Money as MoneyMessage } from "../../gen/common/v1/money_pb.js";
import {
  DeclineReason as DeclineReasonEnum,
  ErrorReason,
  ErrorReasonSchema,
  PaymentSchema,
  PaymentService,
  PaymentStatus as PaymentStatusEnum,
  type Payment as PaymentMessage,
} from "../../gen/payments/v1/payments_pb.js";
import {
  DomainError,
  IdempotencyKeyReusedError,
  InvalidPaymentStateError,
  PaymentNotFoundError,
  RefundExceedsCapturedError,
  ValidationError,
} from "./domain/errors.js";
import type { DeclineReason, Money, Payment, PaymentStatus } from "./domain/model.js";
import type { Payments } from "./domain/payments.js";

/** The gRPC surface of payments: request → domain call → response, domain errors → codes. */
export function routes(payments: Payments): ServiceImpl<typeof PaymentService> {
  return {
    async authorize(req, ctx) {
      const r = await call(() =>
        payments.authorize(
          { idempotencyKey: req.idempotencyKey, orderId: req.orderId, customerId: req.customerId, amount: toMoney(req.amount), cardNumber: req.cardNumber },
          ctx.signal,
        ),
      );
      return { payment: toPaymentMessage(r.payment) };
    },
    async capture(req) {
      const r = await call(() => payments.capture(req.idempotencyKey, req.paymentId));
      return { payment: toPaymentMessage(r.payment) };
    },
    async void(req) {
      const r = await call(() => payments.void(req.idempotencyKey, req.paymentId));
      return { payment: toPaymentMessage(r.payment) };
    },
    async refund(req) {
      const r = await call(() => payments.refund({ idempotencyKey: req.idempotencyKey, paymentId: req.paymentId, amount: toMoney(req.amount), reason: req.reason }));
      return {
        payment: toPaymentMessage(r.payment),
        refundId: r.refund!.id,
        amount: { currencyCode: r.payment.amount.currency, amountMinor: BigInt(r.refund!.amountMinor) },
      };
    },
    async getPayment(req) {
      return { payment: toPaymentMessage(await call(() => payments.getPayment(req.paymentId))) };
    },
  };
}

/** int64 → number; values beyond JS's exact range become NaN, which the domain rejects as INVALID_AMOUNT. */
function toMoney(m: MoneyMessage | undefined): Money | undefined {
  if (!m) return undefined;
  const exact = m.amountMinor <= BigInt(Number.MAX_SAFE_INTEGER) && m.amountMinor >= BigInt(-Number.MAX_SAFE_INTEGER);
  return { currency: m.currencyCode, amountMinor: exact ? Number(m.amountMinor) : Number.NaN };
}

const STATUS: Record<PaymentStatus, PaymentStatusEnum> = {
  AUTHORIZED: PaymentStatusEnum.AUTHORIZED,
  CAPTURED: PaymentStatusEnum.CAPTURED,
  VOIDED: PaymentStatusEnum.VOIDED,
  REFUNDED: PaymentStatusEnum.REFUNDED,
  PARTIALLY_REFUNDED: PaymentStatusEnum.PARTIALLY_REFUNDED,
  DECLINED: PaymentStatusEnum.DECLINED,
  FAILED: PaymentStatusEnum.FAILED,
};

const DECLINE: Record<DeclineReason, DeclineReasonEnum> = {
  GENERIC: DeclineReasonEnum.GENERIC,
  INSUFFICIENT_FUNDS: DeclineReasonEnum.INSUFFICIENT_FUNDS,
  EXPIRED_CARD: DeclineReasonEnum.EXPIRED_CARD,
  PROCESSING_ERROR: DeclineReasonEnum.PROCESSING_ERROR,
};

function toPaymentMessage(p: Payment): PaymentMessage {
  return create(PaymentSchema, {
    id: p.id,
    orderId: p.orderId,
    customerId: p.customerId,
    amount: { currencyCode: p.amount.currency, amountMinor: BigInt(p.amount.amountMinor) },
    refundedAmount: { currencyCode: p.amount.currency, amountMinor: BigInt(p.refundedMinor) },
    status: STATUS[p.status],
    declineReason: p.declineReason ? DECLINE[p.declineReason] : DeclineReasonEnum.UNSPECIFIED,
    cardLast4: p.cardLast4,
    createTime: timestampFromMs(p.createdAt),
    updateTime: timestampFromMs(p.updatedAt),
  });
}

async function call<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toConnectError(err);
  }
}

const VALIDATION_REASONS = { amount: ErrorReason.INVALID_AMOUNT, card: ErrorReason.INVALID_CARD, "currency-mismatch": ErrorReason.CURRENCY_MISMATCH } as const;

/** Maps a domain error to its code and payments.v1 reason; anything else passes through (Internal). */
export function toConnectError(err: unknown): unknown {
  if (!(err instanceof DomainError)) return err;
  if (err instanceof ValidationError) {
    return err.kind ? errorWithReason(err.message, Code.InvalidArgument, ErrorReasonSchema, VALIDATION_REASONS[err.kind], err.metadata) : new ConnectError(err.message, Code.InvalidArgument);
  }
  if (err instanceof PaymentNotFoundError) return errorWithReason(err.message, Code.NotFound, ErrorReasonSchema, ErrorReason.PAYMENT_NOT_FOUND, err.metadata);
  if (err instanceof InvalidPaymentStateError) return errorWithReason(err.message, Code.FailedPrecondition, ErrorReasonSchema, ErrorReason.INVALID_PAYMENT_STATE, err.metadata);
  if (err instanceof RefundExceedsCapturedError) return errorWithReason(err.message, Code.FailedPrecondition, ErrorReasonSchema, ErrorReason.REFUND_EXCEEDS_CAPTURED, err.metadata);
  if (err instanceof IdempotencyKeyReusedError) return errorWithReason(err.message, Code.AlreadyExists, ErrorReasonSchema, ErrorReason.IDEMPOTENCY_KEY_REUSED, err.metadata);
  return new ConnectError(err.message, Code.Internal);
}

