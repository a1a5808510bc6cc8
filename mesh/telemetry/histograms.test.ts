import { AggregationTemporality, MeterProvider, MetricReader, type HistogramMetricData } from "@opentelemetry/sdk-metrics";
import { bindMeter, DURATION_BUCKETS_SECONDS, HistogramReader, meshMetrics, METRIC } from "./metrics.js";
import { startTelemetry } from "./telemetry.js";

/** A reader collected by hand at a fixed temporality: the SDK's own histogram, for reference. */
class HandReader extends MetricReader {
  constructor(temporality: AggregationTemporality) {
    super({ aggregationTemporalitySelector: () => temporality });
  }
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

// Data points sorted by label values (the SDK lists a delta interval's series in first-use order),
// sums to 12 digits (the SDK adds per-interval sums, we keep one running sum).
function normal(m: HistogramMetricData | undefined) {
  if (!m) return undefined;
  const key = (p: HistogramMetricData["dataPoints"][number]) => JSON.stringify(p.attributes);
  const dataPoints = [...m.dataPoints].sort((a, b) => key(a).localeCompare(key(b))).map((p) => ({ ...p, value: { ...p.value, sum: Number(p.value.sum?.toPrecision(12)) } }));
  return { ...m, dataPoints };
}

describe("per-call duration histograms", () => {
  let clock = 1_700_000_000_000;
  afterEach(() => {
    bindMeter(undefined);
    jest.restoreAllMocks();
  });

  it.each([
    ["cumulative", AggregationTemporality.CUMULATIVE],
    ["delta", AggregationTemporality.DELTA],
  ])("report what the SDK's histogram reported, %s", async (_name, temporality) => {
    jest.spyOn(Date, "now").mockImplementation(() => clock);
    const sdkReader = new HandReader(temporality);
    const reference = new MeterProvider({ readers: [sdkReader] })
      .getMeter("reference")
      .createHistogram(METRIC.serverDuration, { description: "Time to handle a unary RPC, in seconds.", unit: "s", advice: { explicitBucketBoundaries: DURATION_BUCKETS_SECONDS } });
    const ours = new HistogramReader(temporality);
    // Another delta reader collecting at other times must not disturb ours.
    const other = new HistogramReader(AggregationTemporality.DELTA);
    bindMeter(new MeterProvider().getMeter("mesh"), [other, ours]);
    const get = meshMetrics.serverRecorder("a.v1.A", "Get");
    const list = meshMetrics.serverRecorder("a.v1.A", "List");
    const call = (method: "Get" | "List", ms: number) => {
      (method === "Get" ? get : list).record(undefined, ms);
      reference.record(ms / 1000, { service: "a.v1.A", method });
    };
    const rounds: [("Get" | "List"), number][][] = [
      [["Get", 0.4], ["Get", 3], ["List", 700], ["Get", 1], ["Get", -2]],
      [["List", 12_000], ["Get", 0.2], ["Get", 2.5]],
      [],
      [["List", 10_000], ["List", 10_000.5]],
      [["Get", 5]],
    ];
    for (const round of rounds) {
      for (const [method, ms] of round) {
        clock += 7;
        call(method, ms);
        if (ms === 3) other.collect();
      }
      clock += 1_000;
      const expected = (await sdkReader.collect()).resourceMetrics.scopeMetrics[0]?.metrics[0] as HistogramMetricData | undefined;
      expect(normal(ours.collect()[0])).toEqual(normal(expected));
    }
  });

  it("keep their place on /metrics, between the metrics created around them", async () => {
    const t = startTelemetry({ serviceName: "h", instanceId: "h-1", env: {} });
    try {
      meshMetrics.serverRecorder("a.v1.A", "Get").record(undefined, 1);
      meshMetrics.clientRecorder("a", "a.v1.A", "Get").record(undefined, 1);
      meshMetrics.clientAttempt("a", "Get", 2);
      meshMetrics.retryThrottled("a", "Get");
      meshMetrics.httpRequest("GET", "/v1/x", 200, 1);
      meshMetrics.sagaOutcome("confirmed");
      const types = [...(await t.prometheusText()).matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]);
      expect(types).toEqual([
        "target_info",
        METRIC.serverRequests,
        METRIC.clientRequests,
        METRIC.clientAttempts,
        METRIC.clientRetries,
        METRIC.serverDuration,
        METRIC.clientDuration,
        METRIC.clientRetriesThrottled,
        METRIC.httpRequests,
        METRIC.httpDuration,
        METRIC.sagaOutcomes,
      ]);
    } finally {
      await t.shutdown();
    }
  });

  it("go to push exporters too, in our scope, where the SDK's histograms were", async () => {
    // The console exporter prints each metric with console.dir; OTLP's exporters need dynamic
    // imports jest does not run, and get the same ResourceMetrics.
    const printed: { descriptor: { name: string; unit: string }; dataPoints: HistogramMetricData["dataPoints"] }[] = [];
    jest.spyOn(console, "dir").mockImplementation((m) => void printed.push(m));
    // 1 h: only the shutdown's final export runs.
    const t = startTelemetry({ serviceName: "h", instanceId: "h-1", env: { OTEL_METRICS_EXPORTER: "console", OTEL_METRIC_EXPORT_INTERVAL: "3600000" } });
    const server = meshMetrics.serverRecorder("a.v1.A", "Get");
    server.record(undefined, 0.5);
    server.record(undefined, 30);
    meshMetrics.clientRecorder("a", "a.v1.A", "Get").record(undefined, 2);
    meshMetrics.retryThrottled("a", "Get");
    await t.shutdown();
    expect(printed.map((m) => m.descriptor.name)).toEqual([METRIC.serverRequests, METRIC.clientRequests, METRIC.serverDuration, METRIC.clientDuration, METRIC.clientRetriesThrottled]);
    const duration = printed.find((m) => m.descriptor.name === METRIC.serverDuration)!;
    expect(duration.descriptor.unit).toBe("s");
    expect(duration.dataPoints).toEqual([
      expect.objectContaining({
        attributes: { service: "a.v1.A", method: "Get" },
        value: { count: 2, sum: 0.0305, min: 0.0005, max: 0.03, buckets: { boundaries: DURATION_BUCKETS_SECONDS, counts: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0] } },
      }),
    ]);
  });
});
