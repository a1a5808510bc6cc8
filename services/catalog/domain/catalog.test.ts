import { Catalog, encodeToken, pageSize, parseQuery, type CatalogRepository, type Category, type NameCursor, type Product } from "./catalog.js";
import { InvalidPageTokenError, InvalidQueryError, ProductNotFoundError, ValidationError } from "./errors.js";

/** In-memory repository with the same ordering rules as the SQL one. */
class FakeRepo implements CatalogRepository {
  constructor(
    private readonly products: Product[],
    private readonly categories: Category[],
  ) {}
  async listProducts(q: { categoryId?: string; after?: NameCursor; limit: number }) {
    return this.products
      .filter((p) => p.active && (!q.categoryId || p.categoryId === q.categoryId))
      .sort(byName((p) => p.name))
      .filter((p) => !q.after || isAfter(p.name, p.id, q.after))
      .slice(0, q.limit);
  }
  async getProduct(id: string) {
    return this.products.find((p) => p.id === id);
  }
  async searchProducts(q: { terms: string[]; categoryId?: string; offset: number; limit: number }) {
    return this.products
      .filter((p) => p.active && q.terms.every((t) => `${p.name} ${p.description} ${p.sku}`.toLowerCase().includes(t)))
      .sort(byName((p) => p.name))
      .slice(q.offset, q.offset + q.limit);
  }
  async listCategories(q: { after?: NameCursor; limit: number }) {
    return [...this.categories]
      .sort(byName((c) => c.displayName))
      .filter((c) => !q.after || isAfter(c.displayName, c.id, q.after))
      .slice(0, q.limit);
  }
}

function byName<T extends { id: string }>(name: (x: T) => string) {
  return (a: T, b: T) => (name(a) < name(b) ? -1 : name(a) > name(b) ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}
function isAfter(name: string, id: string, c: NameCursor) {
  return name > c.name || (name === c.name && id > c.id);
}

const product = (i: number, over: Partial<Product> = {}): Product => ({
  id: `p-${String(i).padStart(3, "0")}`,
  sku: `SKU-${i}`,
  name: `Item ${String(i).padStart(3, "0")}`,
  description: i % 2 ? "odd thing" : "even thing",
  categoryId: i % 2 ? "odd" : "even",
  price: { currency: "EUR", amountMinor: 100 * i },
  active: true,
  ...over,
});

const products = Array.from({ length: 45 }, (_, i) => product(i + 1, i === 4 ? { active: false } : {}));
const catalog = new Catalog(new FakeRepo(products, [{ id: "even", displayName: "Even" }, { id: "odd", displayName: "Odd" }]));

async function collect(pageSizeN: number, category = ""): Promise<string[]> {
  const ids: string[] = [];
  let pageToken = "";
  do {
    const page = await catalog.listProducts({ pageSize: pageSizeN, pageToken, category });
    ids.push(...page.items.map((p) => p.id));
    pageToken = page.nextPageToken;
  } while (pageToken);
  return ids;
}

describe("catalog domain", () => {
  it("applies the page size default (20), cap (100) and rejects negatives", () => {
    expect(pageSize(0, 20, 100)).toBe(20);
    expect(pageSize(7, 20, 100)).toBe(7);
    expect(pageSize(1_000, 20, 100)).toBe(100);
    expect(() => pageSize(-1, 20, 100)).toThrow(ValidationError);
  });

  it("pages through every active product exactly once, in name order", async () => {
    const all = await collect(7);
    expect(all).toHaveLength(44);
    expect(new Set(all).size).toBe(44);
    expect(all).not.toContain("p-005");
    expect(await collect(0)).toEqual(all);
    expect((await catalog.listProducts({ pageSize: 0, pageToken: "", category: "" })).items).toHaveLength(20);
  });

  it("filters by category and binds tokens to their filter", async () => {
    const odd = await collect(5, "odd");
    expect(odd.every((id) => Number(id.slice(2)) % 2 === 1)).toBe(true);
    const first = await catalog.listProducts({ pageSize: 5, pageToken: "", category: "odd" });
    await expect(catalog.listProducts({ pageSize: 5, pageToken: first.nextPageToken, category: "even" })).rejects.toBeInstanceOf(InvalidPageTokenError);
    await expect(catalog.listCategories({ pageSize: 5, pageToken: first.nextPageToken })).rejects.toBeInstanceOf(InvalidPageTokenError);
  });

  it("rejects garbage page tokens", async () => {
    for (const token of ["not base64 at all!", "e30", encodeToken("products", "c=", 42)]) {
      await expect(catalog.listProducts({ pageSize: 5, pageToken: token, category: "" })).rejects.toBeInstanceOf(InvalidPageTokenError);
    }
  });

  it("returns inactive products by id and NotFound for unknown ids", async () => {
    expect((await catalog.getProduct("p-005")).active).toBe(false);
    await expect(catalog.getProduct("nope")).rejects.toBeInstanceOf(ProductNotFoundError);
    await expect(catalog.getProduct("")).rejects.toBeInstanceOf(ValidationError);
  });

  it("splits queries into distinct lower-case words and bounds them", () => {
    expect(parseQuery("  Odd   THING odd ")).toEqual(["odd", "thing"]);
    expect(() => parseQuery("   ")).toThrow(InvalidQueryError);
    expect(() => parseQuery("x".repeat(201))).toThrow(InvalidQueryError);
    expect(parseQuery("x".repeat(200))).toHaveLength(1);
  });

  it("pages search results with tokens bound to the query", async () => {
    const first = await catalog.searchProducts({ query: "ODD", pageSize: 10, pageToken: "", category: "" });
    expect(first.items).toHaveLength(10);
    const second = await catalog.searchProducts({ query: "odd", pageSize: 10, pageToken: first.nextPageToken, category: "" });
    expect(second.items[0].id).not.toBe(first.items[0].id);
    await expect(catalog.searchProducts({ query: "even", pageSize: 10, pageToken: first.nextPageToken, category: "" })).rejects.toBeInstanceOf(
      InvalidPageTokenError,
    );
  });

  it("lists categories by display name", async () => {
    const page = await catalog.listCategories({ pageSize: 1, pageToken: "" });
    expect(page.items.map((c) => c.id)).toEqual(["even"]);
    const next = await catalog.listCategories({ pageSize: 1, pageToken: page.nextPageToken });
    expect(next.items.map((c) => c.id)).toEqual(["odd"]);
    expect(next.nextPageToken).toBe("");
  });
});
