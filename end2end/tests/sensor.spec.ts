import * as fs from "node:fs";
import * as path from "node:path";
import { expect, test } from "@playwright/test";
import { logIn } from "./operator";

/** Every `timestamp,temperature` line of a sensor in the local archive, in `[from, to)`. */
function archived(sensor: string, from: number, to: number): string[] {
  const root = path.join(process.env.THERMO_DATA_DIR ?? "data", "archive", "temperature_data", sensor);
  const lines: string[] = [];
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (entry.name.endsWith(".jsonl")) {
        for (const line of fs.readFileSync(p, "utf8").split("\n")) {
          if (!line.trim()) continue;
          const r = JSON.parse(line);
          if (r.timestamp >= from && r.timestamp < to) lines.push(`${r.timestamp},${r.temperature}`);
        }
      }
    }
  };
  walk(root);
  return [...new Set(lines)].sort();
}

test("a sensor's history: pick a range, see the chart, download the CSV of the archive", async ({ page }, testInfo) => {
  await page.goto("/sensors/sensor1");
  await expect(page.locator("h1")).toHaveText("sensor1");
  await expect(page.locator("#history-chart svg")).toBeVisible({ timeout: 30_000 });
  await expect(page.locator(".facts")).toContainText("80.0 °C");
  await page.screenshot({ path: testInfo.outputPath("sensor.png"), fullPage: true });

  await page.getByRole("link", { name: "Last day" }).click();
  await expect(page).toHaveURL(/range=24h/);
  await expect(page.getByRole("link", { name: "Last day" })).toHaveAttribute("aria-current", "true");
  // The data line (plotters draws the axes as polylines too).
  // (A minute of data in a day is a vertical line: zero width, so "attached", not "visible".)
  await expect(page.locator(`#history-chart svg polyline[stroke="#2563EB"]`)).toHaveCount(1);
  await expect(page.locator("figcaption")).toContainText("points from raw readings");

  // Everything up to the range's end is archived a flush later.
  await page.waitForTimeout(2_500);
  const href = await page.locator("#csv-download").getAttribute("href");
  const url = new URL(href!, "http://x");
  const [from, to] = [Number(url.searchParams.get("from")), Number(url.searchParams.get("to"))];
  const [download] = await Promise.all([page.waitForEvent("download"), page.locator("#csv-download").click()]);
  const csv = fs.readFileSync((await download.path())!, "utf8").trim().split("\n");
  expect(csv[0]).toBe("timestamp,sensor_id,temperature");
  const rows = csv.slice(1).map((line) => {
    const [t, sensor, temp] = line.split(",");
    expect(sensor).toBe("sensor1");
    return `${Number(t)},${Number(temp)}`;
  });
  expect(rows.length).toBeGreaterThan(0);
  expect(rows.slice().sort()).toEqual(archived("sensor1", from, to));
});

test("a custom range is kept in the URL and charted", async ({ page }) => {
  await page.goto("/sensors/sensor1");
  const now = Date.now();
  const iso = (ms: number) => new Date(ms).toISOString().slice(0, 16);
  await page.getByLabel("From (UTC)").fill(iso(now - 2 * 3600_000));
  await page.getByLabel("To (UTC)").fill(iso(now + 60_000));
  await page.getByRole("button", { name: "Show" }).click();
  await expect(page).toHaveURL(/from=.*&to=/);
  await expect(page.locator("#history-chart svg")).toBeVisible();
});

test("a hostile sensor id is shown as text, never run or rendered as HTML", async ({ page }) => {
  const dialogs: string[] = [];
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  const hostile = `<img src=x onerror=alert(1)>"'&`;
  await page.goto(`/sensors/${encodeURIComponent(hostile)}`);
  await expect(page.getByRole("alert").first()).toContainText(hostile);
  await expect(page.locator("main img")).toHaveCount(0);
  await page.goto(`/alerts?sensor=${encodeURIComponent("<script>alert(2)</script>")}`);
  await expect(page.getByRole("alert")).toContainText("<script>alert(2)</script>");
  await expect(page.locator("main script")).toHaveCount(0);
  expect(dialogs).toEqual([]);
});

test("thresholds are edited on the sensor page, checked, and kept", async ({ page }) => {
  await logIn(page, "/sensors/sensor5");
  await expect(page.locator("body")).toHaveAttribute("data-hydrated", "true");
  await page.getByText("Edit thresholds").click();
  await page.getByLabel("High (°C)").fill("80");
  await page.getByLabel("Critical (°C)").fill("70");
  await page.getByRole("button", { name: "Save thresholds" }).click();
  await expect(page.getByRole("alert")).toContainText("must be below the CRITICAL one");
  await expect(page.locator("#threshold-high")).toHaveText("80.0 °C");

  await page.getByLabel("High (°C)").fill("70.5");
  await page.getByLabel("Critical (°C)").fill("75");
  await page.getByRole("button", { name: "Save thresholds" }).click();
  await expect(page.getByRole("status")).toContainText("Saved");
  await expect(page.locator("#threshold-high")).toHaveText("70.5 °C");
  await page.reload();
  await expect(page.locator("#threshold-high")).toHaveText("70.5 °C");
  await expect(page.locator("#threshold-critical")).toHaveText("75.0 °C");
});
