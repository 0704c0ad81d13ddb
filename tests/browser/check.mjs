// Opens the demo catalog in a built STAC Browser with headless Chromium and prints one JSON line of what it saw.
// Driven by tests/test_stac_browser.py, which passes one JSON argument:
//   {modules, chromium, browserUrl, catalogUrl, childHref, collectionHref, itemHref, assetTitle, screenshot}
// The Python test owns the assertions; this script only clicks through and reports what the pages, the console and
// the network showed, up to the step that failed (when one does), so that a failure explains itself.
import { createRequire } from "node:module";
import path from "node:path";

const config = JSON.parse(process.argv[2]);
const require = createRequire(path.join(config.modules, "package.json"));
const { chromium } = require("playwright-core");

const TIMEOUT_MS = 60_000;
const catalogOrigin = new URL(config.catalogUrl).origin;
const browserOrigin = new URL(config.browserUrl).origin;
const local = (url) => url.startsWith(catalogOrigin) || url.startsWith(browserOrigin);

const report = {
  pages: {},
  consoleErrors: [],
  pageErrors: [],
  failedRequests: [],
  fetched: [],
  blockedExternal: [],
  steps: [],
};
let page;

// STAC Browser's own location for a catalog URL (see its store's toBrowserPath): protocol and host become path parts.
const browserPath = (url) => {
  const parsed = new URL(url);
  const protocol = parsed.protocol === "https:" ? "" : `${parsed.protocol}/`;
  return `/external/${protocol}${parsed.host}${parsed.pathname}`;
};

async function describe() {
  return page.evaluate(() => {
    const texts = (selector) =>
      Array.from(document.querySelectorAll(selector), (node) => node.innerText.trim()).filter(Boolean);
    return {
      url: location.href,
      documentTitle: document.title,
      heading: texts("h1").join(" | "),
      cards: texts(".card-title"),
      assets: texts(".asset .card-header .title"),
      alerts: texts(".alert-danger, .alert-warning"),
      text: document.body.innerText,
    };
  });
}

// Waits for what a step expects, failing fast when STAC Browser shows an error or the page logs one instead (an
// invalid JSON document only shows up in the console when it is reached by a click).
async function expect(locator) {
  const alert = page.locator(".alert-danger").first();
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    if (await locator.isVisible()) {
      return;
    }
    if (await alert.isVisible()) {
      throw new Error(`STAC Browser shows an error: ${(await alert.innerText()).trim()}`);
    }
    const logged = report.consoleErrors.filter((error) => !report.blockedExternal.includes(error.url));
    if (logged.length > 0 || report.pageErrors.length > 0) {
      throw new Error(`the page logged an error: ${logged[0]?.text ?? report.pageErrors[0]}`);
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${TIMEOUT_MS / 1000} s waiting for ${locator}`);
    }
    await page.waitForTimeout(250);
  }
}

async function main() {
  const browser = await chromium.launch({
    executablePath: config.chromium,
    headless: true,
    args: ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-dev-shm-usage"],
    timeout: TIMEOUT_MS,
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: "en-US" });
    // The test must behave the same with and without internet: basemap tiles and anything else off loopback is
    // refused here and listed, never fetched.
    await context.route("**/*", (route) => {
      const url = route.request().url();
      if (local(url) || url.startsWith("data:") || url.startsWith("blob:")) {
        return route.continue();
      }
      report.blockedExternal.push(url);
      return route.abort("blockedbyclient");
    });
    page = await context.newPage();
    page.setDefaultTimeout(TIMEOUT_MS);
    page.on("console", (message) => {
      if (message.type() === "error") {
        report.consoleErrors.push({ text: message.text(), url: message.location().url || "" });
      }
    });
    page.on("pageerror", (error) => report.pageErrors.push(String(error.stack || error)));
    page.on("requestfailed", (request) => {
      const url = request.url();
      if (local(url)) {
        report.failedRequests.push({ url, error: request.failure()?.errorText ?? "failed" });
      }
    });
    page.on("response", (response) => {
      if (response.url().startsWith(catalogOrigin)) {
        report.fetched.push({ url: response.url(), status: response.status() });
      }
      if (response.status() >= 400) {
        report.failedRequests.push({ url: response.url(), status: response.status() });
      }
    });

    // Root catalog: its title and one card per stage catalog.
    report.steps.push("root");
    await page.goto(`${config.browserUrl}/#${browserPath(config.catalogUrl)}`);
    const childLink = page.locator(`a[href$="${browserPath(config.childHref)}"]`).first();
    await expect(childLink);
    // Cards load their catalog once visible; give them a moment so the titles shown are the final ones.
    await page.waitForLoadState("networkidle");
    report.pages.root = await describe();

    // Prediction catalog, reached by clicking through like a user would: it holds the collection of the item.
    report.steps.push("catalog");
    await childLink.click();
    const collectionLink = page.locator(`a[href$="${browserPath(config.collectionHref)}"]`).first();
    await expect(collectionLink);
    await page.waitForLoadState("networkidle");
    report.pages.catalog = await describe();

    // Prediction collection: its extent and its item.
    report.steps.push("collection");
    await collectionLink.click();
    const itemLink = page.locator(`a[href$="${browserPath(config.itemHref)}"]`).first();
    await expect(itemLink);
    await page.waitForLoadState("networkidle");
    report.pages.collection = await describe();

    // Prediction item: the classes asset, expanded to show its legend, and the preview in the thumbnails tab.
    report.steps.push("item");
    await itemLink.click();
    const asset = page.locator(".asset", { has: page.locator(".card-header", { hasText: config.assetTitle }) }).first();
    const toggle = asset.locator(".card-header button").first();
    await expect(toggle);
    // STAC Browser opens an item's only asset by itself; a click would close it again.
    if ((await toggle.getAttribute("aria-expanded")) !== "true") {
      await toggle.click();
    }
    const details = asset.locator(".collapse.show").first();
    await details.waitFor();
    const thumbnailsTab = page.getByRole("tab", { name: /thumbnail/i }).first();
    if (await thumbnailsTab.count()) {
      await thumbnailsTab.click();
      await page.locator("img.thumbnail").first().waitFor();
    }
    await page.waitForLoadState("networkidle");
    const item = await describe();
    item.thumbnails = await page.evaluate(() =>
      Array.from(document.querySelectorAll("img.thumbnail"), (img) => ({
        src: img.currentSrc || img.src,
        width: img.naturalWidth,
        height: img.naturalHeight,
      })),
    );
    item.expandedAsset = await details.innerText();
    report.pages.item = item;
    // Tall enough to include the legend table below the preview.
    await page.screenshot({ path: config.screenshot, fullPage: true, clip: { x: 0, y: 0, width: 1280, height: 1500 } });
    report.steps.push("done");
  } catch (error) {
    report.error = String(error.stack || error);
    if (page) {
      report.pages.failed = await describe().catch((failure) => ({ error: String(failure) }));
    }
  } finally {
    await browser.close();
  }
}

try {
  await main();
} catch (error) {
  report.error = String(error.stack || error);
}

process.stdout.write(`${JSON.stringify(report)}\n`);
