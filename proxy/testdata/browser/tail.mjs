// Opens the admin page in headless Chromium, tails a route, and reports
// the first event the page shows. Driven by TestAdminPageInChromium:
//   node tail.mjs ADMIN_URL ROUTE PARAM_VALUE
// prints "READY" once the page's EventSource is open (the test then
// publishes), then "GOT <id>\t<event>\t<data>" for the first row; or,
// when the tail is refused, "REFUSED <what the page says>".
import { launch } from "./launch.mjs";

const [adminURL, route, value] = process.argv.slice(2);
const browser = await launch();
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(15000);
  await page.goto(adminURL);
  await page.locator(`#routes tr.route[data-path="${route}"]`).click();
  if (value) await page.locator("#params input").first().fill(value);
  await page.locator("#start").click();
  const status = page.locator("#status", { hasText: /^(open|refused.*)$/ });
  await status.waitFor();
  const text = await status.textContent();
  if (text.startsWith("refused")) {
    console.log("REFUSED " + text);
  } else {
    console.log("READY");
    const row = page.locator("#events tbody tr").first();
    await row.waitFor();
    const cells = await row.locator("td").allTextContents();
    console.log("GOT " + cells.slice(1).join("\t"));
  }
} finally {
  await browser.close();
}
