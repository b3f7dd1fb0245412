// Runs a snippet of the README in the console of the page
// config.example.hcl serves, in headless Chromium. Driven by
// TestREADMETopicsInChromium:
//   node topics.mjs PAGE_URL SNIPPET COUNT
// prints "READY" once the snippet's EventSource (tickers) is open (the test then
// publishes), then "LOG <text>" for each of the first COUNT lines the
// snippet logs.
import { launch } from "./launch.mjs";

const [pageURL, snippet, count] = process.argv.slice(2);
const browser = await launch();
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(15000);
  let logged = 0;
  let done;
  const all = new Promise((resolve) => { done = resolve; });
  page.on("console", (m) => {
    if (m.type() !== "log") {
      return; // the browser's own (a missing favicon, say)
    }
    console.log("LOG " + m.text());
    if (++logged === Number(count)) done();
  });
  page.on("pageerror", (e) => console.log("ERROR " + e));
  await page.goto(pageURL);
  await page.addScriptTag({ content: snippet });
  await page.waitForFunction(() => tickers.readyState === EventSource.OPEN);
  console.log("READY");
  await all;
} finally {
  await browser.close();
}
