import { expect, test } from "@playwright/test";

// How the overview holds up under a fast stream: long tasks, frame times and JS heap over
// THERMO_BENCH_MINUTES (default 10). Figures are printed as one JSON line; the test only
// asserts that the page kept up (stayed live and kept counting readings).
test("the overview under load", async ({ page }) => {
  const minutes = Number(process.env.THERMO_BENCH_MINUTES ?? "10");
  await page.goto("/");
  await expect(page.locator("body")).toHaveAttribute("data-hydrated", "true");
  await expect(page.locator("#stream-state")).toHaveText("live");
  await page.evaluate(() => {
    const w = window as any;
    w.bench = { longTasks: [] as number[], frames: [] as number[] };
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) w.bench.longTasks.push(e.duration);
    }).observe({ type: "longtask", buffered: false });
    let last = performance.now();
    const frame = (t: number) => {
      w.bench.frames.push(t - last);
      last = t;
      requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
  });
  const sample = () =>
    page.evaluate(() => ({
      heap: (performance as any).memory?.usedJSHeapSize ?? 0,
      nodes: document.getElementsByTagName("*").length,
      readings: Number(document.querySelector("#live-count")?.textContent?.split(" ")[0] ?? 0),
    }));
  const samples: Array<{ at: number; heap: number; nodes: number; readings: number }> = [];
  const started = Date.now();
  while (Date.now() - started < minutes * 60_000) {
    samples.push({ at: (Date.now() - started) / 1000, ...(await sample()) });
    console.log(`progress: ${samples.at(-1)!.at.toFixed(0)} s, heap ${(samples.at(-1)!.heap / 1e6).toFixed(1)} MB`);
    await page.waitForTimeout(Math.min(30_000, minutes * 60_000));
  }
  samples.push({ at: (Date.now() - started) / 1000, ...(await sample()) });
  const { longTasks, frames } = await page.evaluate(() => (window as any).bench);
  const pct = (xs: number[], p: number) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : 0;
  };
  const first = samples[Math.min(1, samples.length - 1)];
  const last = samples.at(-1)!;
  const seconds = last.at;
  const figures = {
    minutes,
    readings_per_s: (last.readings - samples[0].readings) / Math.max(1, seconds),
    long_tasks: longTasks.length,
    long_task_ms_total: Math.round(longTasks.reduce((a: number, b: number) => a + b, 0)),
    long_task_ms_max: Math.round(Math.max(0, ...longTasks)),
    frame_ms: { p50: pct(frames, 50), p95: pct(frames, 95), p99: pct(frames, 99), max: Math.max(0, ...frames) },
    heap_mb: { after_warmup: first.heap / 1e6, end: last.heap / 1e6 },
    dom_nodes: { after_warmup: first.nodes, end: last.nodes },
  };
  console.log(`DASHBOARD_BENCH ${JSON.stringify(figures)}`);
  await expect(page.locator("#stream-state")).toHaveText("live");
  expect(last.readings).toBeGreaterThan(samples[0].readings);
});
