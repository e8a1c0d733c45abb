// Drives Converse.js in headless Chromium for tests/browser/test_converse.py.
//
// Usage: node converse.mjs CONFIG_JSON
//   {chromium, pageUrl, outputDir, timeoutMs,
//    runs: [{transport, service, jid, password, peer, incoming, outgoing}]}
//
// For each run it opens the page (which logs in over `transport`), reports the bound JID,
// waits for the message `incoming` that the test sends from `peer`, answers `outgoing`
// through the chat box, and saves a screenshot. Progress goes to stdout as one JSON object
// per line ({"event": "connected" | "sent" | "screenshot" | "error" | "done", ...}); the
// browser's console goes to stderr.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

const config = JSON.parse(process.argv[2]);
const timeout = config.timeoutMs;

function emit(event) {
  process.stdout.write(JSON.stringify(event) + "\n");
}

async function runOne(context, run) {
  const page = await context.newPage();
  page.setDefaultTimeout(timeout);
  page.on("console", (msg) => process.stderr.write(`[${run.transport}] ${msg.type()}: ${msg.text()}\n`));
  page.on("pageerror", (err) => process.stderr.write(`[${run.transport}] pageerror: ${err}\n`));
  await page.addInitScript(() => {
    localStorage.clear();
    sessionStorage.clear();
  });
  const url = new URL(config.pageUrl);
  for (const key of ["transport", "service", "jid", "password"]) {
    url.searchParams.set(key, run[key]);
  }
  const screenshot = join(config.outputDir, `converse-${run.transport}.png`);
  try {
    await page.goto(url.href);
    await page.waitForFunction(() => window.roostTest && window.roostTest.connected);
    const { jid, service } = await page.evaluate(() => window.roostTest);
    emit({ event: "connected", transport: run.transport, jid, service });

    // The test now sends `incoming`: the sender shows up with an unread message; open the
    // chat with a click, as a person would, and read it there.
    const sender = page.locator("a.open-chat.unread-msgs").first();
    await sender.waitFor();
    await sender.click();
    await page.getByText(run.incoming).first().waitFor();
    const textarea = page.locator("textarea.chat-textarea").first();
    await textarea.fill(run.outgoing);
    await textarea.press("Enter");
    await page.getByText(run.outgoing).first().waitFor();
    emit({ event: "sent", transport: run.transport });

    await page.waitForTimeout(300); // let the chat settle for the picture
    await page.screenshot({ path: screenshot });
    emit({ event: "screenshot", transport: run.transport, path: screenshot });
  } catch (err) {
    const failure = join(config.outputDir, `converse-${run.transport}-failure.png`);
    await page.screenshot({ path: failure }).catch(() => {});
    throw new Error(`${run.transport}: ${err.message} (screenshot: ${failure})`);
  } finally {
    await page.close();
  }
}

async function main() {
  const userDataDir = await mkdtemp(join(tmpdir(), "roost-chromium-"));
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: config.chromium,
      headless: true,
      args: FLAGS,
      viewport: { width: 1280, height: 800 },
      timeout,
    });
    // Nothing leaves this machine: requests to other hosts (fonts, avatars) are refused.
    await context.route(
      (url) => !["127.0.0.1", "localhost", "[::1]"].includes(url.hostname),
      (route) => {
        process.stderr.write(`refused a request to ${route.request().url()}\n`);
        return route.abort();
      },
    );
    for (const run of config.runs) {
      await runOne(context, run);
    }
    emit({ event: "done" });
  } finally {
    if (context) {
      await context.close().catch(() => {});
    }
    await rm(userDataDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  emit({ event: "error", message: String(err && err.message ? err.message : err) });
  process.exit(1);
});
