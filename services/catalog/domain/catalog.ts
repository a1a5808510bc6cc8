import { InvalidPageTokenError, InvalidQueryError, ProductNotFoundError, ValidationError } from "./errors.js";

/** An amount in integer minor units (cents for EUR). */
export interface Money {
  currency: string;
  amountMinor: number;
}

/** Something the shop sells. */
export interface Product {
  id: string;
  sku: string;
  name: string;
  description: string;
  categoryId: string;
  price: Money;
  /** False: hidden from lists and search, still returned by id. */
  active: boolean;
}

/** A group of products shown together. */
export interface Category {
  id: string;
  displayName: string;
}

/** Where a name-ordered listing continues: after this (name, id). */
export interface NameCursor {
  name: string;
  id: string;
}

/** Storage of products and categories. Lists return at most `limit` rows. */
export interface CatalogRepository {
  /** Active products ordered by (name, id), of one category when given, strictly after `after`. */
  listProducts(q: { categoryId?: string; after?: NameCursor; limit: number }): Promise<Product[]>;
  /** Any product, active or not. */
  getProduct(id: string): Promise<Product | undefined>;
  /**
   * Active products matching every term (case-insensitive substring of name, description or SKU),
   * best match first (name hits weigh most, then SKU, then description), then by (name, id).
   */
  searchProducts(q: { terms: string[]; categoryId?: string; offset: number; limit: number }): Promise<Product[]>;
  /** Categories ordered by (display name, id), strictly after `after`. */
  listCategories(q: { after?: NameCursor; limit: number }): Promise<Category[]>;
}

/** One page of a listing. */
export interface Page<T> {
  items: T[];
  /** Empty on the last page. */
  nextPageToken: string;
}

/** Paging request as the contract defines it. */
export interface PageRequest {
  pageSize: number;
  pageToken: string;
}

// 20 and 100: the contract's default and cap for products (catalog.proto, ListProductsRequest).
export const PRODUCT_PAGE_DEFAULT = 20;
export const PRODUCT_PAGE_MAX = 100;
// 100 and 500: the contract's default and cap for categories (ListCategoriesRequest).
export const CATEGORY_PAGE_DEFAULT = 100;
export const CATEGORY_PAGE_MAX = 500;
// 200 characters: the contract's limit for a search query (SearchProductsRequest.query).
export const QUERY_MAX_LENGTH = 200;
// 10 terms: each term adds three LIKE predicates; more words than that add cost, not precision.
export const QUERY_MAX_TERMS = 10;
// 128 characters: ids are short slugs; anything longer is a client bug, not a lookup.
const ID_MAX_LENGTH = 128;

/** Read use cases of the catalog: validation, paging and page tokens over a repository. */
export class Catalog {
  constructor(private readonly repo: CatalogRepository) {}

  /** Active products, optionally of one category, ordered by name. */
  async listProducts(req: PageRequest & { category: string }): Promise<Page<Product>> {
    const limit = pageSize(req.pageSize, PRODUCT_PAGE_DEFAULT, PRODUCT_PAGE_MAX);
    const filter = `c=${req.category}`;
    const after = req.pageToken ? decodeToken<NameCursor>(req.pageToken, "products", filter, isNameCursor) : undefined;
    const rows = await this.repo.listProducts({ categoryId: req.category || undefined, after, limit: limit + 1 });
    const items = rows.slice(0, limit);
    const last = items[items.length - 1];
    return { items, nextPageToken: rows.length > limit ? encodeToken("products", filter, { name: last.name, id: last.id }) : "" };
  }

  /** One product by id, active or not. */
  async getProduct(id: string): Promise<Product> {
    requireId("id", id);
    const product = await this.repo.getProduct(id);
    if (!product) throw new ProductNotFoundError(id);
    return product;
  }

  /** Active products matching every word of the query, best match first. */
  async searchProducts(req: PageRequest & { query: string; category: string }): Promise<Page<Product>> {
    const terms = parseQuery(req.query);
    const limit = pageSize(req.pageSize, PRODUCT_PAGE_DEFAULT, PRODUCT_PAGE_MAX);
    const filter = `q=${terms.join(" ")}\0c=${req.category}`;
    // Offset paging: relevance order has no stable keyset, and results are bounded by the catalog.
    const offset = req.pageToken ? decodeToken<number>(req.pageToken, "search", filter, isOffset) : 0;
    const rows = await this.repo.searchProducts({ terms, categoryId: req.category || undefined, offset, limit: limit + 1 });
    const items = rows.slice(0, limit);
    return { items, nextPageToken: rows.length > limit ? encodeToken("search", filter, offset + limit) : "" };
  }

  /** Categories ordered by display name. */
  async listCategories(req: PageRequest): Promise<Page<Category>> {
    const limit = pageSize(req.pageSize, CATEGORY_PAGE_DEFAULT, CATEGORY_PAGE_MAX);
    const after = req.pageToken ? decodeToken<NameCursor>(req.pageToken, "categories", "", isNameCursor) : undefined;
    const rows = await this.repo.listCategories({ after, limit: limit + 1 });
    const items = rows.slice(0, limit);
    const last = items[items.length - 1];
    return { items, nextPageToken: rows.length > limit ? encodeToken("categories", "", { name: last.displayName, id: last.id }) : "" };
  }
}

/** 0 → the default, above the cap → the cap, negative → ValidationError naming page_size. */
export function pageSize(requested: number, defaultSize: number, max: number): number {
  if (!Number.isInteger(requested) || requested < 0) throw new ValidationError("page_size", `page_size must be >= 0, got ${requested}`);
  if (requested === 0) return defaultSize;
  return Math.min(requested, max);
}

/** Splits a query into lower-case words; throws InvalidQueryError when empty or too long. */
export function parseQuery(query: string): string[] {
  if (query.length > QUERY_MAX_LENGTH) throw new InvalidQueryError(`query is ${query.length} characters long; the limit is ${QUERY_MAX_LENGTH}`);
  const terms = [...new Set(query.toLowerCase().split(/\s+/).filter(Boolean))];
  if (terms.length === 0) throw new InvalidQueryError("query must contain at least one word");
  if (terms.length > QUERY_MAX_TERMS) throw new InvalidQueryError(`query has ${terms.length} words; the limit is ${QUERY_MAX_TERMS}`);
  return terms;
}

function requireId(field: string, value: string): void {
  if (!value) throw new ValidationError(field, `${field} must not be empty`);
  if (value.length > ID_MAX_LENGTH) throw new ValidationError(field, `${field} is ${value.length} characters long; the limit is ${ID_MAX_LENGTH}`);
}

interface TokenBody<T> {
  /** Which listing issued it. */
  k: string;
  /** The filter it was issued for: a token is only valid with the same filter. */
  f: string;
  /** Where to continue. */
  c: T;
}

/** An opaque page token: base64url JSON of the listing, its filter and the position. */
export function encodeToken<T>(kind: string, filter: string, cursor: T): string {
  const body: TokenBody<T> = { k: kind, f: filter, c: cursor };
  return Buffer.from(JSON.stringify(body), "utf8").toString("base64url");
}

function decodeToken<T>(token: string, kind: string, filter: string, valid: (c: unknown) => c is T): T {
  let body: Partial<TokenBody<unknown>>;
  try {
    body = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as Partial<TokenBody<unknown>>;
  } catch {
    throw new InvalidPageTokenError("page_token is not a token this service issued");
  }
  if (body === null || typeof body !== "object" || body.k !== kind || !valid(body.c)) {
    throw new InvalidPageTokenError("page_token is not a token this service issued for this method");
  }
  if (body.f !== filter) throw new InvalidPageTokenError("page_token belongs to a different query or filter; restart from the first page");
  return body.c;
}

function isNameCursor(c: unknown): c is NameCursor {
  return typeof c === "object" && c !== null && typeof (c as NameCursor).name === "string" && typeof (c as NameCursor).id === "string";
}

function isOffset(c: unknown): c is number {
  return typeof c === "number" && Number.isSafeInteger(c) && c >= 0;
}
