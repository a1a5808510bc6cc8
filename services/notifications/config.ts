import { readRuntimeConfig, type RuntimeConfig } from "../../mesh/runtime/index.js";

/** Everything notifications reads from its environment, parsed once. */
export interface NotificationsConfig {
  /** MESHWORK_* settings shared by every service (see mesh/runtime). */
  runtime: RuntimeConfig;
  /** NATS_URL, required: notifications are made only from events. */
  natsUrl: string;
}

/** Parses the notifications environment; throws naming the bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): NotificationsConfig {
  const runtime = readRuntimeConfig("notifications", env);
  if (!runtime.natsUrl) throw new Error("NATS_URL is required: notifications consume order and payment events");
  return { runtime, natsUrl: runtime.natsUrl };
}
