/** Client-side load balancing: power of two choices over peak-EWMA × outstanding, with outlier ejection. */
export { Balancer, type BalancerOptions, type Outcome } from "./balancer.js";
export { EndpointStats } from "./endpoint-stats.js";
