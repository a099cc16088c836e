// The website chat widget in headless Chromium (Debian's), driven by playwright-core against a
// running devstack. Run by scripts/e2e-webchat.sh, which starts devstack and seeds the widget.
// Each check prints `ok` or `FAILED`; the last line is `e2e: N passed, N failed`.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (run scripts/e2e-webchat.sh)`);
  return value;
};
const site = env("E2E_SITE");
const api = env("E2E_API");
const key = env("E2E_WIDGET_KEY");
const artifacts = env("E2E_ARTIFACTS");
const visitorLimit = Number(env("E2E_VISITOR_LIMIT"));
const chromiumPath = env("CHROMIUM");
const demo = `${site}/webchat-demo/${key}`;
const REPLY_TIMEOUT = 20000;

let passed = 0;
let failed = 0;
const finish = () => {
  console.log(`e2e: ${passed} passed, ${failed} failed`);
  if (process.env.E2E_RESULT_FILE) writeFileSync(process.env.E2E_RESULT_FILE, `${passed} ${failed}\n`);
  process.exit(failed === 0 && passed > 0 ? 0 : 1);
};
const check = async (name, body) => {
  const started = Date.now();
  try {
    await body();
    passed += 1;
    console.log(`ok     ${name} (${Date.now() - started} ms)`);
    return true;
  } catch (error) {
    failed += 1;
    console.log(`FAILED ${name}: ${String(error && error.stack ? error.stack : error).split("\n").slice(0, 4).join("\n    ")}`);
    return false;
  }
};
const expect = (condition, message) => {
  if (!condition) throw new Error(message);
};

let browser;
try {
  // As root (CI) Chromium needs --no-sandbox; the other flags keep it off the network,
  // which this machine does not have anyway.
  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-dev-shm-usage",
    ],
  });
} catch (error) {
  console.log(`FAILED the browser starts: ${error}`);
  failed += 1;
  finish();
}

const context = await browser.newContext({ viewport: { width: 1000, height: 720 }, reducedMotion: "reduce" });
const page = await context.newPage();
const pageErrors = [];
page.on("pageerror", (error) => pageErrors.push(String(error)));
page.on("console", (message) => {
  // Failed loads are judged by their responses below (the browser's favicon probe 404s).
  if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) pageErrors.push(message.text());
});
page.on("response", (response) => {
  const expected = response.status() === 429 || response.url().endsWith("/favicon.ico");
  if (response.status() >= 400 && !expected) pageErrors.push(`${response.status()} ${response.url()}`);
});
await context.addInitScript(() => {
  window.__cspViolations = [];
  document.addEventListener("securitypolicyviolation", (event) =>
    window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`),
  );
});

// Locators pierce the widget's open shadow root.
const widget = page.locator("salesagent-webchat");
const launcher = widget.locator("button.launcher");
const input = widget.getByRole("textbox", { name: "Your message" });
const log = widget.getByRole("log");
const alert = widget.getByRole("alert");
const typing = widget.locator("p.typing");
const agentMessages = log.locator("p.msg.agent:not(.greeting)");
const shadowActiveId = () => page.evaluate(() => document.querySelector("salesagent-webchat").shadowRoot.activeElement?.id ?? null);
const send = async (text) => {
  await input.fill(text);
  await input.press("Enter");
};
const waitForAgentText = (text) =>
  log.locator("p.msg.agent", { hasText: text }).first().waitFor({ state: "attached", timeout: REPLY_TIMEOUT });

const ok = await check("the demo page embeds the widget and its launcher appears", async () => {
  const response = await page.goto(demo);
  expect(response && response.ok(), `the demo page answered ${response && response.status()}`);
  await launcher.waitFor({ timeout: 10000 });
  expect((await launcher.getAttribute("aria-expanded")) === "false", "the panel starts closed");
});
if (!ok) {
  await browser.close();
  finish();
}

await check("the script was served versioned and cacheable for a year", async () => {
  const src = await page.locator("script[src*='/widget.js']").getAttribute("src");
  const response = await page.request.get(src, { headers: { Origin: site } });
  expect(response.status() === 200, `status ${response.status()}`);
  expect(/immutable/.test(response.headers()["cache-control"] || ""), `cache-control: ${response.headers()["cache-control"]}`);
  expect(response.headers()["access-control-allow-origin"] === site, "the allowed site gets the CORS header");
});

await check("the keyboard opens the panel and focus moves to the message box", async () => {
  await launcher.focus();
  await page.keyboard.press("Enter");
  await input.waitFor({ state: "visible", timeout: 5000 });
  expect((await launcher.getAttribute("aria-expanded")) === "true", "aria-expanded is true when open");
  expect((await shadowActiveId()) === "input", `focus is on ${await shadowActiveId()}`);
  expect((await widget.getByRole("dialog").count()) === 1, "the panel is a dialog");
  expect((await log.getAttribute("aria-live")) === "polite", "the log is a polite live region");
});

await check("the channel's title, greeting, agent name and colour are shown", async () => {
  const heading = await widget.locator("h2").textContent();
  expect(heading === "Lisbon Coffee Roasters", `title: ${heading}`);
  const agent = await widget.locator("p.agent-name").textContent();
  expect(agent === "Ava", `agent: ${agent}`);
  await log.locator("p.greeting", { hasText: "Ask us anything about our coffee" }).waitFor({ timeout: 2000 });
  const background = await launcher.evaluate((node) => getComputedStyle(node).backgroundColor);
  expect(background === "rgb(122, 62, 18)", `launcher colour: ${background}`);
  const colour = await launcher.evaluate((node) => getComputedStyle(node).color);
  expect(colour === "rgb(255, 255, 255)", `text on a dark accent is white: ${colour}`);
});

await check("a visitor's message gets the AI's reply, with a typing indicator meanwhile", async () => {
  await send("Do you ship to Lisbon?");
  await log.locator("p.msg.visitor", { hasText: "Do you ship to Lisbon?" }).waitFor({ timeout: 5000 });
  await typing.waitFor({ state: "visible", timeout: 2000 });
  expect((await typing.textContent()).includes("Ava is typing"), "the indicator names the agent");
  await waitForAgentText("Thanks for your message: Do you ship to Lisbon?");
  await typing.waitFor({ state: "hidden", timeout: 5000 });
  const stored = await page.evaluate((k) => JSON.parse(localStorage.getItem(`salesagent.webchat.${k}`) || "{}"), key);
  expect(/^vt_/.test(stored.token || ""), "the visitor token is kept in localStorage");
});

const payload = `<img src=x onerror="window.__xss=1"><b>bold</b><script>window.__xss=2</script>`;
await check("HTML in a reply is shown as text, never parsed", async () => {
  await send(payload);
  await waitForAgentText("<b>bold</b>");
  const reply = await agentMessages.last().textContent();
  expect(reply.includes(payload), `the reply shows the markup literally: ${reply}`);
  const injected = await page.evaluate(() => {
    const root = document.querySelector("salesagent-webchat").shadowRoot;
    return { elements: root.querySelectorAll(".log img, .log b, .log script").length, xss: window.__xss ?? null };
  });
  expect(injected.elements === 0, `${injected.elements} elements were created from the text`);
  expect(injected.xss === null, "no script from the text ran");
});

await check("a screenshot of the conversation is saved", async () => {
  await page.screenshot({ path: join(artifacts, "webchat-widget.png") });
});

await check("after a reload the history is shown again", async () => {
  await page.reload();
  await launcher.waitFor({ timeout: 10000 });
  await waitForAgentText("Thanks for your message: Do you ship to Lisbon?");
  await log.locator("p.msg.visitor", { hasText: "Do you ship to Lisbon?" }).waitFor({ timeout: 5000 });
  const count = await log.locator("p.msg:not(.greeting)").count();
  expect(count === 4, `4 messages after the reload, saw ${count}`);
  expect((await launcher.getAttribute("aria-expanded")) === "true", "the panel stays open across the reload");
});

await check("over the per-visitor limit the visitor is told to wait, in plain words", async () => {
  // Two messages were sent. The limit counts per minute in fixed windows, so a window may
  // begin part-way through: keep writing until the alert shows, at most two windows' worth.
  let refusedText = null;
  for (let i = 3; i <= 2 * visitorLimit + 1 && refusedText === null; i += 1) {
    const text = `Message ${i}`;
    await send(text);
    const shown = log.locator("p.msg.visitor", { hasText: text });
    await Promise.race([
      shown.waitFor({ timeout: 5000 }),
      alert.waitFor({ state: "visible", timeout: 5000 }),
    ]);
    if (await alert.isVisible()) refusedText = text;
  }
  expect(refusedText !== null, `no limit alert after ${2 * visitorLimit + 1} messages`);
  const text = await alert.textContent();
  expect(/sending messages too quickly\. Please wait \d+ seconds?/.test(text), `alert: ${text}`);
  expect((await input.inputValue()) === refusedText, "the unsent text stays in the box");
});

await check("Escape closes the panel and returns focus to the launcher", async () => {
  await input.focus();
  await page.keyboard.press("Escape");
  await input.waitFor({ state: "hidden", timeout: 2000 });
  expect((await launcher.getAttribute("aria-expanded")) === "false", "aria-expanded is false");
  expect(await launcher.evaluate((n) => n.getRootNode().activeElement === n), "focus is on the launcher");
});

await check("no CSP violation and no script error on a page with a strict policy", async () => {
  const violations = await page.evaluate(() => window.__cspViolations);
  expect(violations.length === 0, `CSP violations: ${violations.join(", ")}`);
  expect(pageErrors.length === 0, `page errors: ${pageErrors.join(" | ")}`);
});

await check("prefers-reduced-motion turns the animations off", async () => {
  await launcher.click();
  const animation = await widget.locator("section.panel").evaluate((node) => getComputedStyle(node).animationName);
  expect(animation === "none", `panel animation: ${animation}`);
});

await check("polling stops while the tab is hidden and resumes when it is shown", async () => {
  await input.waitFor({ state: "visible", timeout: 2000 });
  const polls = [];
  const onRequest = (request) => {
    if (request.url().includes("/messages?after=")) polls.push(Date.now());
  };
  page.on("request", onRequest);
  const setHidden = (hidden) =>
    page.evaluate((h) => {
      Object.defineProperty(document, "hidden", { configurable: true, get: () => h });
      Object.defineProperty(document, "visibilityState", { configurable: true, get: () => (h ? "hidden" : "visible") });
      document.dispatchEvent(new Event("visibilitychange"));
    }, hidden);
  await setHidden(true);
  const hiddenAt = Date.now();
  await page.waitForTimeout(4000);
  const whileHidden = polls.filter((t) => t > hiddenAt + 100).length;
  await setHidden(false);
  const shownAt = Date.now();
  await page.waitForTimeout(1000);
  page.off("request", onRequest);
  expect(whileHidden === 0, `${whileHidden} polls while hidden`);
  expect(polls.some((t) => t >= shownAt), "no poll right after the tab was shown again");
});

await check("offline, the visitor is told so and the text is kept", async () => {
  await context.setOffline(true);
  await send("Are you there?");
  await alert.filter({ hasText: "offline" }).waitFor({ state: "visible", timeout: 5000 });
  expect((await input.inputValue()) === "Are you there?", "the unsent text stays in the box");
  await context.setOffline(false);
});

await check("data- attributes on the tag override the channel's settings", async () => {
  const custom = await context.newPage();
  await custom.goto(`${demo}?title=Weekend%20desk&color=%23ffcc00&agent_name=Bo&position=left`);
  const customWidget = custom.locator("salesagent-webchat");
  const customLauncher = customWidget.locator("button.launcher");
  await customLauncher.waitFor({ timeout: 10000 });
  const heading = await customWidget.locator("h2").textContent();
  expect(heading === "Weekend desk", `title: ${heading}`);
  const agent = await customWidget.locator("p.agent-name").textContent();
  expect(agent === "Bo", `agent: ${agent}`);
  const colours = await customLauncher.evaluate((node) => [getComputedStyle(node).backgroundColor, getComputedStyle(node).color]);
  expect(colours[0] === "rgb(255, 204, 0)", `launcher colour: ${colours[0]}`);
  expect(colours[1] === "rgb(17, 17, 17)", `text on a light accent is near-black: ${colours[1]}`);
  const box = await customLauncher.boundingBox();
  expect(box && box.x < 100, `data-position=left puts the launcher on the left (x=${box && box.x})`);
  await custom.close();
});

await check("a chat whose channel was deleted says it is no longer available", async () => {
  const gone = await context.newPage();
  await gone.goto(`${site}/webchat-demo/${env("E2E_GONE_KEY")}`);
  const goneWidget = gone.locator("salesagent-webchat");
  await goneWidget.locator("button.launcher").click();
  const deleted = await gone.request.delete(`${api}/phone-numbers/${env("E2E_GONE_ID")}`, {
    headers: { Authorization: `Bearer ${env("E2E_TENANT_TOKEN")}` },
  });
  expect(deleted.status() === 204, `deleting the channel answered ${deleted.status()}`);
  const box = goneWidget.getByRole("textbox", { name: "Your message" });
  await box.fill("Hello?");
  await box.press("Enter");
  const goneAlert = goneWidget.getByRole("alert");
  await goneAlert.filter({ hasText: "This chat is no longer available." }).waitFor({ state: "visible", timeout: 5000 });
  expect(await box.isDisabled(), "the message box is disabled");
  await gone.close();
});

await check("a site that is not an allowed origin gets no widget", async () => {
  const other = await context.newPage();
  const scriptStatuses = [];
  other.on("response", (response) => {
    if (response.url().includes("/widget.js")) scriptStatuses.push(response.status());
  });
  // The API's own origin is not in the channel's allowed origins.
  await other.goto(`${api}/webchat-demo/${key}`);
  await other.waitForTimeout(1500);
  expect((await other.locator("salesagent-webchat").count()) === 0, "the widget rendered on a site not allowed");
  expect(scriptStatuses.includes(403), `script responses: ${scriptStatuses.join(", ")}`);
  await other.close();
});

await browser.close();
finish();
