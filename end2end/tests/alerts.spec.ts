import { expect, test, type Page } from "@playwright/test";
import { logIn, OPERATOR } from "./operator";

// The test command runs the server with frequent simulated excursions, so alerts exist
// within seconds; wait for the index to hold some.
async function someAlerts(page: Page) {
  await expect
    .poll(async () => (await (await page.request.get("/api/alerts?limit=50")).json()).length, {
      timeout: 60_000,
    })
    .toBeGreaterThan(0);
  return (await (await page.request.get("/api/alerts?limit=50")).json()) as Array<{
    alert_id: string;
    sensor_id: string;
    severity: string;
  }>;
}

async function hydrated(page: Page) {
  await expect(page.locator("body")).toHaveAttribute("data-hydrated", "true");
  await expect(page.locator("#stream-state")).toHaveText("live");
}

test("alerts are filtered by severity and sensor, and the URL keeps the filters", async ({ page }, testInfo) => {
  const [first] = await someAlerts(page);
  await page.goto("/alerts");
  await expect(page.locator("tr.alert-row").first()).toBeVisible();
  await page.screenshot({ path: testInfo.outputPath("alerts.png"), fullPage: true });

  await page.getByRole("checkbox", { name: first.severity }).check();
  await page.getByLabel("Sensors").fill(first.sensor_id);
  await page.getByRole("button", { name: "Apply filters" }).click();
  await expect(page).toHaveURL(new RegExp(`severity=${first.severity}`));
  await expect(page).toHaveURL(new RegExp(`sensor=${first.sensor_id}(&|$)`));

  const rows = page.locator("tr.alert-row");
  await expect(rows.first()).toBeVisible();
  for (const sensor of await rows.locator("td.sensor").allTextContents()) {
    expect(sensor).toBe(first.sensor_id);
  }
  for (const severity of await rows.locator("td.severity").allTextContents()) {
    expect(severity).toBe(first.severity);
  }
  // The form shows the filters of the URL it was loaded from.
  await page.reload();
  await expect(page.getByRole("checkbox", { name: first.severity })).toBeChecked();
  await expect(page.getByLabel("Sensors")).toHaveValue(first.sensor_id);
  // Each row links to its sensor.
  await rows.first().locator("td.sensor a").click();
  await expect(page).toHaveURL(new RegExp(`/sensors/${first.sensor_id}$`));
});

test("an acknowledgement shows at once on another open page", async ({ browser, page }) => {
  await someAlerts(page);
  await logIn(page, "/alerts");
  await hydrated(page);
  const row = page.locator("tr.alert-row:not(.acknowledged)").first();
  await expect(row).toBeVisible();
  const id = await row.getAttribute("data-alert");
  expect(id).toBeTruthy();

  const other = await (await browser.newContext()).newPage();
  await other.goto("/alerts");
  await hydrated(other);
  const mirrored = other.locator(`tr[data-alert="${id}"]`);
  await expect(mirrored).not.toHaveClass(/acknowledged/);

  await page.locator(`tr[data-alert="${id}"] button.ack`).click();
  await expect(page.locator(`tr[data-alert="${id}"]`)).toHaveClass(/acknowledged/);
  await expect(mirrored).toHaveClass(/acknowledged/);
  await expect(mirrored.locator(".acked")).toContainText(OPERATOR.name);
  // The index keeps it: a fresh load shows it acknowledged.
  await other.reload();
  await expect(other.locator(`tr[data-alert="${id}"]`)).toHaveClass(/acknowledged/);
});

test("filters that make no sense are refused in words, not ignored", async ({ page }) => {
  await page.goto("/alerts?severity=lukewarm");
  await expect(page.getByRole("alert")).toContainText("`lukewarm` is not a severity");
  await expect(page.locator("tr.alert-row")).toHaveCount(0);
});
