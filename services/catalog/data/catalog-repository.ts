import { sql, type Expression, type Kysely, type SqlBool } from "kysely";
import type { Database } from "../../../mesh/db/index.js";
import type { CatalogRepository, Category, NameCursor, Product } from "../domain/catalog.js";

interface CatalogTables {
  categories: { id: string; display_name: string };
  products: {
    id: string;
    sku: string;
    name: string;
    description: string;
    category_id: string;
    price_minor: number;
    currency: string;
    active: number;
  };
}

type ProductRow = CatalogTables["products"];

/** Weights of a term found in each field: a name hit is the strongest signal of relevance. */
const NAME_WEIGHT = 3;
const SKU_WEIGHT = 2;
const DESCRIPTION_WEIGHT = 1;

/** {@link CatalogRepository} on SQLite or PostgreSQL. */
export class SqlCatalogRepository implements CatalogRepository {
  private readonly db: Kysely<CatalogTables>;

  constructor(private readonly database: Database) {
    this.db = database.db as Kysely<CatalogTables>;
  }

  async listProducts(q: { categoryId?: string; after?: NameCursor; limit: number }): Promise<Product[]> {
    let query = this.db.selectFrom("products").selectAll().where("active", "=", 1);
    if (q.categoryId) query = query.where("category_id", "=", q.categoryId);
    if (q.after) query = query.where(this.after("name", q.after));
    const rows = await query.orderBy(this.byteOrder("name")).orderBy("id").limit(q.limit).execute();
    return rows.map(toProduct);
  }

  async getProduct(id: string): Promise<Product | undefined> {
    const row = await this.db.selectFrom("products").selectAll().where("id", "=", id).executeTakeFirst();
    return row && toProduct(row);
  }

  async searchProducts(q: { terms: string[]; categoryId?: string; offset: number; limit: number }): Promise<Product[]> {
    // lower() + LIKE is case-insensitive on both dialects (SQLite's lower() folds ASCII only).
    const patterns = q.terms.map((t) => `%${t.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
    const like = (column: string, pattern: string) => sql<SqlBool>`lower(${sql.ref(column)}) like ${pattern} escape '\\'`;
    const score = sql.join(
      patterns.map(
        (p) =>
          sql`(case when ${like("name", p)} then ${sql.lit(NAME_WEIGHT)} else 0 end + case when ${like("sku", p)} then ${sql.lit(SKU_WEIGHT)} else 0 end + case when ${like("description", p)} then ${sql.lit(DESCRIPTION_WEIGHT)} else 0 end)`,
      ),
      sql` + `,
    );
    let query = this.db
      .selectFrom("products")
      .selectAll()
      .select(sql<number>`${score}`.as("score"))
      .where("active", "=", 1);
    if (q.categoryId) query = query.where("category_id", "=", q.categoryId);
    for (const p of patterns) query = query.where((eb) => eb.or([like("name", p), like("sku", p), like("description", p)]));
    const rows = await query.orderBy("score", "desc").orderBy(this.byteOrder("name")).orderBy("id").limit(q.limit).offset(q.offset).execute();
    return rows.map(toProduct);
  }

  async listCategories(q: { after?: NameCursor; limit: number }): Promise<Category[]> {
    let query = this.db.selectFrom("categories").selectAll();
    if (q.after) query = query.where(this.after("display_name", q.after));
    const rows = await query.orderBy(this.byteOrder("display_name")).orderBy("id").limit(q.limit).execute();
    return rows.map((r) => ({ id: r.id, displayName: r.display_name }));
  }

  /**
   * A name column compared in byte order on both dialects: SQLite's default BINARY collation and
   * PostgreSQL's "C" agree, whereas PostgreSQL's locale collation would order (and page) differently.
   */
  private byteOrder(column: string): Expression<string> {
    return this.database.dialect === "postgres" ? sql<string>`${sql.ref(column)} collate "C"` : sql<string>`${sql.ref(column)}`;
  }

  /** Keyset predicate: (column, id) > (cursor.name, cursor.id). */
  private after(column: string, cursor: NameCursor): Expression<SqlBool> {
    const col = this.byteOrder(column);
    return sql<SqlBool>`(${col} > ${cursor.name} or (${col} = ${cursor.name} and id > ${cursor.id}))`;
  }
}

function toProduct(r: ProductRow): Product {
  return {
    id: r.id,
    sku: r.sku,
    name: r.name,
    description: r.description,
    categoryId: r.category_id,
    price: { currency: r.currency, amountMinor: Number(r.price_minor) },
    active: Number(r.active) === 1,
  };
}
