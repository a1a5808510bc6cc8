/**
 * The reference shop's catalog, inserted by migration 0002. Ids are fixed ("prod-001" …) so other
 * services' seeds and tests can name products; prices are EUR cents. prod-008 and prod-040 are
 * inactive (GetProduct still returns them; lists and search hide them).
 */
export const SEED_CURRENCY = "EUR";

export const SEED_CATEGORIES: ReadonlyArray<{ id: string; displayName: string }> = [
  { id: "kitchen", displayName: "Kitchen & Dining" },
  { id: "garden", displayName: "Garden & Outdoors" },
  { id: "office", displayName: "Office & Stationery" },
  { id: "audio", displayName: "Audio & Headphones" },
  { id: "books", displayName: "Books & Magazines" },
];

/** [id, sku, name, description, category, price in cents, active] */
type SeedProduct = readonly [string, string, string, string, string, number, boolean];

export const SEED_PRODUCTS: readonly SeedProduct[] = [
  ["prod-001", "KIT-001", "Chef's Knife 20 cm", "Forged stainless steel chef's knife with a full tang and a riveted handle.", "kitchen", 5900, true],
  ["prod-002", "KIT-002", "Cast Iron Skillet 26 cm", "Pre-seasoned cast iron pan for searing, baking and campfire cooking.", "kitchen", 4500, true],
  ["prod-003", "KIT-003", "French Press 1 L", "Borosilicate glass coffee press with a double steel filter.", "kitchen", 2900, true],
  ["prod-004", "KIT-004", "Bamboo Cutting Board", "Large end-grain bamboo board with a juice groove.", "kitchen", 1900, true],
  ["prod-005", "KIT-005", "Espresso Cups, Set of 4", "Double-walled glass cups that keep espresso hot.", "kitchen", 2400, true],
  ["prod-006", "KIT-006", "Stainless Steel Kettle", "Stovetop kettle with a whistle, 2 litres, for all hob types.", "kitchen", 3900, true],
  ["prod-007", "KIT-007", "Silicone Spatula Set", "Three heat-resistant spatulas that do not scratch non-stick pans.", "kitchen", 1290, true],
  ["prod-008", "KIT-008", "Ceramic Mixing Bowl", "Hand-glazed stoneware bowl; discontinued.", "kitchen", 2200, false],
  ["prod-009", "GAR-009", "Garden Hose 25 m", "Kink-free reinforced hose with brass fittings.", "garden", 3490, true],
  ["prod-010", "GAR-010", "Pruning Shears", "Bypass secateurs with hardened steel blades for branches up to 2 cm.", "garden", 2190, true],
  ["prod-011", "GAR-011", "Terracotta Planter", "Frost-proof clay pot, 30 cm, with a drainage hole.", "garden", 1590, true],
  ["prod-012", "GAR-012", "Solar Path Lights, Pack of 6", "Stainless steel garden lights that charge by day and glow by night.", "garden", 3990, true],
  ["prod-013", "GAR-013", "Watering Can 5 L", "Galvanised steel can with a removable brass rose.", "garden", 1790, true],
  ["prod-014", "GAR-014", "Folding Camping Chair", "Light aluminium chair with a cup holder, for garden and camping.", "garden", 4990, true],
  ["prod-015", "GAR-015", "Bird Feeder", "Hanging seed feeder with a squirrel guard.", "garden", 1490, true],
  ["prod-016", "GAR-016", "Seed Starter Kit", "Peat-free pots, a tray and a humidity dome for seedlings.", "garden", 990, true],
  ["prod-017", "OFF-017", "Fountain Pen", "Steel-nib fountain pen with a converter and two ink cartridges.", "office", 3500, true],
  ["prod-018", "OFF-018", "A5 Dotted Notebook", "192 pages of 100 g/m² dotted paper, lay-flat binding.", "office", 1250, true],
  ["prod-019", "OFF-019", "LED Desk Lamp", "Dimmable desk lamp with adjustable colour temperature.", "office", 4490, true],
  ["prod-020", "OFF-020", "Mechanical Pencil 0.5 mm", "Metal-grip drafting pencil with a retractable tip.", "office", 790, true],
  ["prod-021", "OFF-021", "Ergonomic Mouse", "Vertical wireless mouse that keeps the wrist in a handshake position.", "office", 3990, true],
  ["prod-022", "OFF-022", "Paper Clips, Box of 500", "Assorted steel paper clips.", "office", 390, true],
  ["prod-023", "OFF-023", "Monitor Stand", "Bamboo riser with a drawer for stationery.", "office", 5490, true],
  ["prod-024", "OFF-024", "Sticky Notes, 12 Pads", "Repositionable notes in six colours.", "office", 890, true],
  ["prod-025", "AUD-025", "Wireless Headphones", "Over-ear headphones with noise cancelling and 30 hours of battery.", "audio", 12900, true],
  ["prod-026", "AUD-026", "Bluetooth Speaker", "Waterproof portable speaker with deep bass.", "audio", 7900, true],
  ["prod-027", "AUD-027", "In-Ear Earbuds", "True wireless earbuds with a charging case.", "audio", 4900, true],
  ["prod-028", "AUD-028", "USB Microphone", "Cardioid condenser microphone for podcasts and calls.", "audio", 8900, true],
  ["prod-029", "AUD-029", "Headphone Stand", "Walnut stand that keeps headphones off the desk.", "audio", 2490, true],
  ["prod-030", "AUD-030", "Vinyl Record Cleaner", "Carbon-fibre brush and cleaning fluid for records.", "audio", 1990, true],
  ["prod-031", "AUD-031", "Audio Cable 3.5 mm, 2 m", "Braided stereo cable with gold-plated plugs.", "audio", 690, true],
  ["prod-032", "AUD-032", "Portable Radio", "FM/DAB+ radio with a rechargeable battery.", "audio", 3490, true],
  ["prod-033", "BOO-033", "The Pragmatic Programmer", "Classic book on the craft of software development.", "books", 4200, true],
  ["prod-034", "BOO-034", "Designing Data-Intensive Applications", "Book on the ideas behind reliable, scalable data systems.", "books", 4600, true],
  ["prod-035", "BOO-035", "Cooking for Engineers", "Recipes explained step by step, with diagrams for every dish.", "books", 2900, true],
  ["prod-036", "BOO-036", "A Field Guide to Garden Birds", "Illustrated guide to the birds that visit feeders and gardens.", "books", 1990, true],
  ["prod-037", "BOO-037", "The Art of Letter Writing", "A book about pens, paper and the pleasure of writing by hand.", "books", 1590, true],
  ["prod-038", "BOO-038", "Sound Engineering Basics", "Introduction to microphones, mixing and recording at home.", "books", 3290, true],
  ["prod-039", "BOO-039", "Tech Monthly, Issue 42", "Magazine issue on headphones, speakers and home audio.", "books", 690, true],
  ["prod-040", "BOO-040", "Catalog Annual 1990", "Out-of-print yearbook; no longer sold.", "books", 1990, false],
];
