/**
 * Initial stock for the reference shop's products. The ids are the catalog's fixed seed ids
 * ("prod-001" … "prod-040"), kept here as a plain list because services never import each other.
 * Most products start with 100 units; a few start scarce so low-stock and sold-out paths show up
 * in a fresh shop: prod-005 (3, below the default threshold), prod-016 (0, sold out), prod-020
 * (1, the last unit), prod-025 (10).
 */
const SPECIAL: Readonly<Record<string, number>> = { "prod-005": 3, "prod-016": 0, "prod-020": 1, "prod-025": 10 };

// 100 units: enough for the end-to-end and load tests of a fresh shop to place many orders.
const DEFAULT_UNITS = 100;

export const SEED_STOCK: ReadonlyArray<{ productId: string; units: number }> = Array.from({ length: 40 }, (_, i) => {
  const productId = `prod-${String(i + 1).padStart(3, "0")}`;
  return { productId, units: SPECIAL[productId] ?? DEFAULT_UNITS };
});
