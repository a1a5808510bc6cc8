import { Code } from "@connectrpc/connect";
import { trace } from "@opentelemetry/api";
import { createLogger, startTelemetry } from "./index.js";

describe("startTelemetry configuration", () => {
  it("exports nothing when nothing is configured, and refuses a second start", async () => {
    const t = startTelemetry({ serviceName: "cfg", instanceId: "cfg-1", env: {} });
    try {
      expect(t.exporters).toEqual({ traces: [], metrics: [] });
      expect(() => startTelemetry({ serviceName: "cfg", instanceId: "cfg-2", env: {} })).toThrow(expect.objectContaining({ code: Code.FailedPrecondition }));
      trace.getTracer("cfg").startSpan("kept").end();
      expect(t.recentSpans().map((s) => s.name)).toEqual(["kept"]);
    } finally {
      await t.shutdown();
    }
  });

  it("turns OTLP on for traces and metrics when only an endpoint is set", async () => {
    // Port 9 (discard) on loopback: nothing listens, exports fail fast and harmlessly.
    const t = startTelemetry({ serviceName: "cfg", instanceId: "cfg-1", env: { OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9" } });
    await t.shutdown();
    expect(t.exporters).toEqual({ traces: ["otlp"], metrics: ["otlp"] });
  });

  it("honours OTEL_*_EXPORTER lists and protocols, and names a bad value", async () => {
    const t = startTelemetry({
      serviceName: "cfg",
      instanceId: "cfg-1",
      env: { OTEL_TRACES_EXPORTER: "otlp", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://127.0.0.1:9", OTEL_METRICS_EXPORTER: "none" },
    });
    await t.shutdown();
    expect(t.exporters).toEqual({ traces: ["otlp"], metrics: [] });
    expect(() => startTelemetry({ serviceName: "cfg", instanceId: "x", env: { OTEL_TRACES_EXPORTER: "zipkin" } })).toThrow(/OTEL_TRACES_EXPORTER/);
    expect(() => startTelemetry({ serviceName: "cfg", instanceId: "x", env: { OTEL_TRACES_EXPORTER: "otlp", OTEL_EXPORTER_OTLP_PROTOCOL: "carrier-pigeon" } })).toThrow(
      expect.objectContaining({ code: Code.InvalidArgument }),
    );
  });

  it("does nothing with OTEL_SDK_DISABLED", async () => {
    const t = startTelemetry({ serviceName: "cfg", instanceId: "cfg-1", env: { OTEL_SDK_DISABLED: "true" } });
    try {
      trace.getTracer("cfg").startSpan("dropped").end();
      expect(t.recentSpans()).toEqual([]);
      expect(await t.prometheusText()).toContain("not running");
    } finally {
      await t.shutdown();
    }
  });
});

describe("createLogger", () => {
  it("rejects an unknown level, naming LOG_LEVEL when it came from there", () => {
    expect(() => createLogger({ service: "s", instance: "i", level: "verbose" })).toThrow(expect.objectContaining({ code: Code.InvalidArgument }));
    const saved = process.env.LOG_LEVEL;
    process.env.LOG_LEVEL = "loud";
    try {
      expect(() => createLogger({ service: "s", instance: "i" })).toThrow(/LOG_LEVEL/);
    } finally {
      if (saved === undefined) delete process.env.LOG_LEVEL;
      else process.env.LOG_LEVEL = saved;
    }
  });
});
