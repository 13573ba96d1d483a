import { expect, type Page } from "@playwright/test";

// The operator the test command's server knows (end2end/operators.test).
export const OPERATOR = { name: "e2e", password: "e2e-operator-pass" };

/** Logs the page's browser context in through the login form, then comes back to `next`. */
export async function logIn(page: Page, next = "/") {
  await page.goto(`/login?next=${encodeURIComponent(next)}`);
  await expect(page.locator("body")).toHaveAttribute("data-hydrated", "true");
  await page.getByLabel("Name").fill(OPERATOR.name);
  await page.getByLabel("Password").fill(OPERATOR.password);
  await page.getByRole("button", { name: "Log in" }).click();
  await expect(page.locator("#operator")).toContainText(OPERATOR.name);
}
