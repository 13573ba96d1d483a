import { expect, test } from "@playwright/test";

test("the overview is rendered on the server with real readings", async ({ request }) => {
  // Readings reach the live state a second or so after start; poll until they do.
  await expect
    .poll(async () => (await (await request.get("/")).text()).match(/data-sensor="sensor\d+"/g)?.length ?? 0, {
      timeout: 30_000,
    })
    .toBeGreaterThan(0);
  const html = await (await request.get("/")).text();
  expect(html).toContain('class="tile');
  expect(html).toMatch(/-?\d+\.\d °C/);
  expect(html).not.toContain("NaN");
});

test("after hydration, new readings arrive over SSE", async ({ page }, testInfo) => {
  await page.goto("/");
  await expect(page.locator("body")).toHaveAttribute("data-hydrated", "true");
  await expect(page.locator("#stream-state")).toHaveText("live");
  const tile = page.locator(".tile").first();
  await expect(tile).toBeVisible();
  const seenBefore = await tile.locator("time.seen").textContent();
  // The built-in simulator publishes one reading per sensor per second.
  await expect(page.locator("#live-count")).not.toHaveText(/^0 /);
  await expect(tile.locator("time.seen")).not.toHaveText(seenBefore ?? "");
  await page.screenshot({ path: testInfo.outputPath("overview.png"), fullPage: true });
});
