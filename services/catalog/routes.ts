import { errorWithReason } from "../../mesh/grpc/index.js";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { CatalogService, ErrorReason, ErrorReasonSchema, ProductSchema, type Product as ProductMessage } from "../../gen/catalog/v1/catalog_pb.js";
import type { Catalog, Product } from "./domain/catalog.js";
import { DomainError, InvalidPageTokenError, InvalidQueryError, ProductNotFoundError, ValidationError } from "./domain/errors.js";

/** The gRPC surface of the catalog: request → domain call → response, domain errors → codes. */
export function routes(catalog: Catalog): ServiceImpl<typeof CatalogService> {
  return {
    async listProducts(req) {
      const page = await call(() => catalog.listProducts({ pageSize: req.pageSize, pageToken: req.pageToken, category: req.category }));
      return { products: page.items.map(toProductMessage), nextPageToken: page.nextPageToken };
    },
    async getProduct(req) {
      const product = await call(() => catalog.getProduct(req.id));
      return { product: toProductMessage(product) };
    },
    async searchProducts(req) {
      const page = await call(() =>
        catalog.searchProducts({ query: req.query, pageSize: req.pageSize, pageToken: req.pageToken, category: req.category }),
      );
      return { products: page.items.map(toProductMessage), nextPageToken: page.nextPageToken };
    },
    async listCategories(req) {
      const page = await call(() => catalog.listCategories({ pageSize: req.pageSize, pageToken: req.pageToken }));
      return { categories: page.items.map((c) => ({ id: c.id, displayName: c.displayName })), nextPageToken: page.nextPageToken };
    },
  };
}

function toProductMessage(p: Product): ProductMessage {
  return create(ProductSchema, {
    id: p.id,
    sku: p.sku,
    name: p.name,
    description: p.description,
    category: p.categoryId,
    price: { currencyCode: p.price.currency, amountMinor: BigInt(p.price.amountMinor) },
    active: p.active,
  });
}

async function call<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toConnectError(err);
  }
}

/** Maps a domain error to its code and catalog.v1 reason; anything else passes through (Internal). */
export function toConnectError(err: unknown): unknown {
  if (!(err instanceof DomainError)) return err;
  if (err instanceof ProductNotFoundError) return errorWithReason(err.message, Code.NotFound, ErrorReasonSchema, ErrorReason.PRODUCT_NOT_FOUND, err.metadata);
  if (err instanceof InvalidPageTokenError) return errorWithReason(err.message, Code.InvalidArgument, ErrorReasonSchema, ErrorReason.INVALID_PAGE_TOKEN, err.metadata);
  if (err instanceof InvalidQueryError) return errorWithReason(err.message, Code.InvalidArgument, ErrorReasonSchema, ErrorReason.INVALID_QUERY, err.metadata);
  if (err instanceof ValidationError) return new ConnectError(err.message, Code.InvalidArgument);
  return new ConnectError(err.message, Code.Internal);
}

