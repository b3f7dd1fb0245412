// Opens the page config.example.hcl serves (demo.html) in headless
// Chromium, as the README tells a newcomer to. Driven by
// TestREADMEDemoInChromium:
//   node demo.mjs PAGE_URL COUNT
// prints "READY" once the page's EventSource is open (the test then
// publishes), then "ROW <text>" for each of the first COUNT quotes shown.
import { launch } from "./launch.mjs";

const [pageURL, count] = process.argv.slice(2);
const browser = await launch();
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(15000);
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(pageURL);
  await page.waitForFunction(() => es.readyState === EventSource.OPEN);
  console.log("READY");
  const rows = page.locator("#quotes li");
  await rows.nth(Number(count) - 1).waitFor();
  for (const text of await rows.allTextContents()) {
    console.log("ROW " + text);
  }
  for (const e of errors) {
    console.log("ERROR " + e);
  }
} finally {
  await browser.close();
}
