/** The product every edge path answers (the Moleculer peer in bench/moleculer answers the same JSON). */
export const BENCH_PRODUCT = { name: "Bench product", price: { currencyCode: "EUR", amountMinor: 1999n }, active: true };
