import { expect, test } from "@playwright/test";
import { logIn, OPERATOR } from "./operator";

test("writes need an operator; a login names them, a logout ends it", async ({ page }) => {
  test.setTimeout(150_000);
  // An open, unacknowledged alert must be listed: the page lists what the index holds at
  // load, so load it again until the simulator has raised one.
  const ack = page.locator("tr.alert-row:not(.acknowledged) button.ack").first();
  await expect
    .poll(
      async () => {
        await page.goto("/alerts");
        return ack.count();
      },
      { timeout: 90_000, intervals: [1_000] },
    )
    .toBeGreaterThan(0);
  await expect(page.locator("body")).toHaveAttribute("data-hydrated", "true");
  await expect(page.locator("#operator")).toContainText("Log in");
  await ack.click();
  await expect(page.locator("#ack-error")).toContainText("log in as an operator");

  await page.goto("/login");
  await expect(page.locator("body")).toHaveAttribute("data-hydrated", "true");
  await page.getByLabel("Name").fill(OPERATOR.name);
  await page.getByLabel("Password").fill("not the password");
  await page.getByRole("button", { name: "Log in" }).click();
  await expect(page.getByRole("alert")).toContainText("wrong name or password");
  await expect(page.locator("#operator")).toContainText("Log in");

  await logIn(page, "/alerts");
  await expect(page).toHaveURL(/\/alerts$/);
  const cookie = (await page.context().cookies()).find((c) => c.name === "thermoalert_session");
  expect(cookie?.httpOnly).toBe(true);
  expect(cookie?.sameSite).toBe("Strict");

  await page.getByRole("button", { name: "Log out" }).click();
  await expect(page.locator("#operator")).toContainText("Log in");
});

test("pages carry a nonce-based CSP and still hydrate; no policy violation", async ({ page }) => {
  const violations: string[] = [];
  page.on("console", (m) => {
    if (/Content Security Policy|Refused to/.test(m.text())) violations.push(m.text());
  });
  const response = await page.goto("/");
  const headers = response!.headers();
  const csp = headers["content-security-policy"];
  expect(csp).toMatch(/script-src 'nonce-[A-Za-z0-9+/=_-]+' 'strict-dynamic'/);
  expect(csp).toContain("frame-ancestors 'none'");
  expect(csp).not.toContain("'unsafe-inline' 'wasm");
  expect(headers["x-content-type-options"]).toBe("nosniff");
  expect(headers["x-frame-options"]).toBe("DENY");
  await expect(page.locator("body")).toHaveAttribute("data-hydrated", "true");
  await expect(page.locator("#stream-state")).toHaveText("live");
  // Every script element the server sent carries the nonce; none runs without it.
  const nonce = csp.match(/'nonce-([^']+)'/)![1];
  const scripts = await page.locator("script").evaluateAll((els) =>
    els.map((e) => (e as HTMLScriptElement).nonce),
  );
  expect(scripts.length).toBeGreaterThan(0);
  for (const n of scripts) expect(n).toBe(nonce);
  expect(violations).toEqual([]);
});

test("a write from another site is refused, with or without a session", async ({ page }) => {
  await logIn(page);
  for (const headers of [
    { "sec-fetch-site": "cross-site" },
    { origin: "http://evil.example" },
  ]) {
    const r = await page.request.post("/api/acknowledge", {
      form: { alert_id: "instant-sensor1-1" },
      headers,
    });
    expect(r.status()).toBe(403);
    expect(await r.text()).toContain("cross-site");
  }
});
