import { defineConfig } from "@playwright/test";
import base from "./playwright.config";

// The dashboard load benchmark (scripts/bench-dashboard.sh): one long test against a server
// the script starts. It prints figures; it never fails on speed.
export default defineConfig({
  ...base,
  testDir: "./perf",
  timeout: 0,
  use: { ...base.use, baseURL: process.env.THERMO_BASE_URL ?? "http://127.0.0.1:3300" },
});
