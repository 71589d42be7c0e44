// The browser journey through the built-in UI, driven in Debian's Chromium by playwright-core.
// Started by `e2e/tests/browser.rs`, which runs identity (courier → a loopback SMTP sink), the
// gateway and the demo upstream, and writes every mail the sink receives to MAIL_DIR as
// `<n>.json` ({to, subject, body}).
//
// Environment: IDENTITY_URL, GATEWAY_URL (the protected upstream is at /protected/), MAIL_DIR,
// ARTIFACTS_DIR (screenshots), CHROMIUM (default /usr/bin/chromium).
// Steps whose backend the identity service does not offer are skipped with a line saying so.

import { chromium } from 'playwright-core';
import { createHmac, randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) throw new Error(`${name} is not set`);
  return v.replace(/\/$/, '');
};
const IDENTITY = env('IDENTITY_URL');
const GATEWAY = env('GATEWAY_URL');
const MAIL_DIR = env('MAIL_DIR');
const ARTIFACTS = env('ARTIFACTS_DIR');
const CHROMIUM = env('CHROMIUM', '/usr/bin/chromium');

const EMAIL = `journey-${Date.now()}@example.com`;
const PASSWORD = 'a long journey password 1';
const NEW_PASSWORD = 'another long journey password 2';
const skipped = [];
let shot = 0;

mkdirSync(ARTIFACTS, { recursive: true });

function log(...args) {
  console.log('[journey]', ...args);
}

async function screenshot(page, name) {
  shot += 1;
  const file = join(ARTIFACTS, `${String(shot).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  log(`step ${shot}: ${name} (${page.url()})`);
}

function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}

// --- mail -------------------------------------------------------------------------------------

function mails() {
  return readdirSync(MAIL_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort((a, b) => parseInt(a, 10) - parseInt(b, 10))
    .map((f) => JSON.parse(readFileSync(join(MAIL_DIR, f), 'utf8')));
}

/** Waits for a mail to `to` beyond the first `seen`, and returns its 6+ digit code. */
async function mailedCode(to, seen, what) {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const fresh = mails().slice(seen).filter((m) => m.to.includes(to));
    for (const m of fresh) {
      const code = /\b(\d{6,8})\b/.exec(m.body);
      if (code) {
        log(`${what} mail received: "${m.subject}"`);
        return code[1];
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no ${what} mail with a code arrived for ${to}`);
}

// --- TOTP (RFC 6238: HMAC-SHA-1, 6 digits, 30 s) -----------------------------------------------

function base32(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of text.replace(/[\s=-]/g, '').toUpperCase()) {
    const v = alphabet.indexOf(c);
    if (v < 0) throw new Error(`not base32: ${c}`);
    bits += v.toString(2).padStart(5, '0');
  }
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

function totp(secret, step) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', base32(secret)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  const value = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return String(value).padStart(6, '0');
}

const currentStep = () => Math.floor(Date.now() / 1000 / 30);
let lastTotpStep = -1;

/** A code not used before: the current step, or the next one (accepted within ±1 step). */
async function freshTotp(secret) {
  let step = Math.max(currentStep(), lastTotpStep + 1);
  while (step > currentStep() + 1) await new Promise((r) => setTimeout(r, 500));
  lastTotpStep = step;
  return totp(secret, step);
}

// --- helpers over the built-in UI ---------------------------------------------------------------

/** Whether an endpoint of the identity API exists and is enabled. */
async function available(path) {
  const response = await fetch(`${IDENTITY}${path}`, { headers: { Accept: 'application/json' } });
  if (response.status !== 200) log(`${path} answers ${response.status}: ${await response.text()}`);
  return response.status === 200;
}

async function clickAndWait(page, selector) {
  await Promise.all([page.waitForLoadState('load'), page.locator(selector).first().click()]);
  await page.waitForLoadState('load');
}

async function submit(page, group, value) {
  const button = page.locator(`form[data-group="${group}"] button[name="method"][value="${value}"]`);
  await Promise.all([page.waitForLoadState('load'), button.first().click()]);
  await page.waitForLoadState('load');
}

/** `/sessions/whoami` with the browser's cookies (the page itself runs no JavaScript). */
async function whoami(page) {
  const r = await page.context().request.get(`${IDENTITY}/sessions/whoami`, {
    headers: { Accept: 'application/json' },
  });
  return { status: r.status(), body: await r.json().catch(() => null) };
}

async function logout(page) {
  await page.goto(`${IDENTITY}/ui/welcome`);
  if (await page.locator('a#logout').count()) {
    await page.locator('a#logout').click();
  } else {
    // The welcome page sent us on (an AAL1 session where AAL2 is required): that page's link.
    await page.locator('a#logout, nav a:text("Sign out")').first().click();
  }
  await page.waitForLoadState('load');
  const me = await whoami(page);
  assert(me.status === 401, `signed out, whoami ${me.status}`);
}

/** Logs in with the password; with `totpSecret` or `backupCode`, then with that second factor. */
async function login(page, password, totpSecret, backupCode) {
  await page.goto(`${IDENTITY}/ui/login`);
  await page.fill('input[name="identifier"]', EMAIL);
  await page.fill('input[name="password"]', password);
  await screenshot(page, 'login-form');
  await submit(page, 'password', 'password');
  if (totpSecret) {
    // The second factor: the aal2 login page (reached directly if the service did not send us).
    if (!(await page.locator('input[name="totp_code"]').count())) {
      await page.goto(`${IDENTITY}/ui/login?aal=aal2`);
    }
    if (backupCode) {
      await page.fill('input[name="lookup_secret"]', backupCode);
      await screenshot(page, 'login-backup-code');
      await submit(page, 'lookup_secret', 'lookup_secret');
    } else {
      await page.fill('input[name="totp_code"]', await freshTotp(totpSecret));
      await screenshot(page, 'login-second-factor');
      await submit(page, 'totp', 'totp');
    }
  }
  const me = await whoami(page);
  assert(me.status === 200, `signed in, whoami ${me.status}`);
  assert(me.body.identity.traits.email === EMAIL, 'the right identity');
  if (totpSecret) {
    assert(me.body.authenticator_assurance_level === 'aal2', `aal2, got ${me.body.authenticator_assurance_level}`);
  }
  return me.body;
}

/** Finishes a second-factor prompt if the service asks for one on the current page. */
async function secondFactorIfAsked(page, totpSecret) {
  if (totpSecret && (await page.locator('input[name="totp_code"]').count())) {
    await page.fill('input[name="totp_code"]', await freshTotp(totpSecret));
    await submit(page, 'totp', 'totp');
  }
}

// --- the journey --------------------------------------------------------------------------------

const profile = mkdtempSync(join(tmpdir(), 'portcullis-chromium-'));
// A fresh profile (--user-data-dir) per run; pages run without JavaScript, like the UI promises.
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  javaScriptEnabled: false,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
let failed = false;
const page = context.pages()[0] ?? (await context.newPage());
try {
  const verification = await available('/self-service/verification/api');
  const recovery = await available('/self-service/recovery/api');

  // 0. A mailed link with a tampered flow id lands on the error page, which explains it.
  if (recovery) {
    await page.goto(`${IDENTITY}/self-service/recovery?flow=${randomUUID()}&code=000000`);
    assert(page.url().includes('/ui/error?id='), `the error page, at ${page.url()}`);
    const alert = await page.locator('[role=alert]').innerText();
    assert(/could not be found/i.test(alert), `the error page explains the error: ${alert}`);
    await screenshot(page, 'error-page');
  }

  // 1. Register.
  await page.goto(`${IDENTITY}/ui/registration`);
  assert(page.url().includes('/ui/registration?flow='), `registration page, at ${page.url()}`);
  await page.fill('input[name="traits.email"]', EMAIL);
  await page.fill('input[name="password"]', PASSWORD);
  await screenshot(page, 'registration-form');
  let seen = mails().length;
  await submit(page, 'password', 'password');
  await screenshot(page, 'registered');
  const registered = await whoami(page);
  assert(registered.status === 200, `registration signs in, whoami ${registered.status}`);

  // 2. Verify the address with the mailed code.
  if (verification) {
    if (!page.url().includes('/ui/verification')) {
      await page.goto(`${IDENTITY}/ui/verification`);
    }
    if (!(await page.locator('input[name="code"]').count())) {
      seen = mails().length;
      await page.fill('input[name="email"]', EMAIL);
      await submit(page, 'code', 'code');
    }
    const code = await mailedCode(EMAIL, seen, 'verification');
    await page.fill('input[name="code"]', code);
    await screenshot(page, 'verification-code');
    await submit(page, 'code', 'code');
    await screenshot(page, 'verified');
    const me = await whoami(page);
    const address = me.body.identity.verifiable_addresses?.find((a) => a.value === EMAIL);
    assert(address?.verified === true, 'the address is verified');
  } else {
    skipped.push('verification (no /self-service/verification backend)');
  }

  // 3. Log out, 4. log in.
  await logout(page);
  await screenshot(page, 'signed-out');
  const session = await login(page, PASSWORD);
  await screenshot(page, 'signed-in');

  // 5. The protected upstream through the gateway, with the browser's session cookie.
  const response = await page.goto(`${GATEWAY}/protected/journey`);
  assert(response.status() === 200, `gateway answers ${response.status()}`);
  const echo = JSON.parse(await page.locator('body').innerText());
  assert(echo.headers['x-user-id'] === session.identity.id, 'the gateway forwards the identity id');
  await screenshot(page, 'gateway-protected-upstream');

  // 6. Enrol TOTP in settings.
  let totpSecret = null;
  let backupCodes = [];
  await page.goto(`${IDENTITY}/ui/settings`);
  await screenshot(page, 'settings');
  if (await page.locator('form[data-group="totp"] [data-node="totp_secret_key"]').count()) {
    totpSecret = (await page.locator('[data-node="totp_secret_key"]').innerText()).trim();
    assert(await page.locator('form[data-group="totp"] img').count(), 'a QR code is shown');
    await page.fill('input[name="totp_code"]', await freshTotp(totpSecret));
    await screenshot(page, 'totp-enrol');
    await submit(page, 'totp', 'totp');
    await screenshot(page, 'totp-enrolled');
    assert(
      (await page.locator('form[data-group="totp"] button[name="totp_unlink"]').count()) > 0,
      'TOTP is linked (an unlink button is offered)',
    );

    // Backup codes (lookup secrets): generate, read, confirm; one is used for the last login.
    if (await page.locator('button[name="lookup_secret_regenerate"]').count()) {
      await clickAndWait(page, 'button[name="lookup_secret_regenerate"]');
      const listed = await page.locator('[data-node="lookup_secret_codes"]').innerText();
      backupCodes = listed.split(/[,\s]+/).filter(Boolean);
      assert(backupCodes.length >= 8, `backup codes are shown (${backupCodes.length})`);
      await screenshot(page, 'backup-codes');
      await clickAndWait(page, 'button[name="lookup_secret_confirm"]');
      await screenshot(page, 'backup-codes-confirmed');
      assert(
        (await page.locator('button[name="lookup_secret_disable"]').count()) > 0,
        'backup codes are active (a disable button is offered)',
      );
    } else {
      skipped.push('backup codes (no lookup_secret group in settings)');
    }

    // 7. Log out, 8. log in with password + TOTP.
    await logout(page);
    await login(page, PASSWORD, totpSecret);
    await screenshot(page, 'signed-in-aal2');
    await page.goto(`${IDENTITY}/ui/welcome`);
    assert((await page.locator('#session-aal').innerText()).trim() === 'aal2', 'welcome shows aal2');
    await screenshot(page, 'welcome-aal2');
    const again = await page.goto(`${GATEWAY}/protected/after-totp`);
    assert(again.status() === 200, `gateway after TOTP login answers ${again.status()}`);
  } else {
    skipped.push('TOTP enrolment and login with TOTP (no totp group in settings)');
  }

  // 9. Recover the password with the mailed code, 10. set a new one, 11. log in with it.
  if (recovery) {
    await logout(page);
    await page.goto(`${IDENTITY}/ui/recovery`);
    seen = mails().length;
    await page.fill('input[name="email"]', EMAIL);
    await screenshot(page, 'recovery-form');
    await submit(page, 'code', 'code');
    const code = await mailedCode(EMAIL, seen, 'recovery');
    await page.fill('input[name="code"]', code);
    await screenshot(page, 'recovery-code');
    await submit(page, 'code', 'code');
    await secondFactorIfAsked(page, totpSecret);
    if (!page.url().includes('/ui/settings')) {
      await page.goto(`${IDENTITY}/ui/settings`);
      await secondFactorIfAsked(page, totpSecret);
    }
    assert(page.url().includes('/ui/settings'), `recovery ends in settings, at ${page.url()}`);
    await screenshot(page, 'recovered-settings');
    // Saving may ask for the second factor first (settings at AAL2); then save again.
    for (let attempt = 0; ; attempt += 1) {
      await page.fill('form[data-group="password"] input[name="password"]', NEW_PASSWORD);
      await submit(page, 'password', 'password');
      const status = page.locator('[role=status]');
      if (page.url().includes('/ui/settings') && (await status.count())
          && /saved/i.test(await status.first().innerText())) break;
      assert(attempt < 1 && totpSecret, `the new password is saved, at ${page.url()}`);
      await screenshot(page, 'settings-asks-second-factor');
      await secondFactorIfAsked(page, totpSecret);
      if (!page.url().includes('/ui/settings')) await page.goto(`${IDENTITY}/ui/settings`);
    }
    await screenshot(page, 'new-password-saved');
    await logout(page);
    // The last login takes a backup code as its second factor when there are some.
    await login(page, NEW_PASSWORD, totpSecret, backupCodes[0]);
    await screenshot(page, 'signed-in-with-new-password');
  } else {
    skipped.push('password recovery (no /self-service/recovery backend)');
  }
} catch (e) {
  failed = true;
  console.error('[journey] FAILED:', e);
  await screenshot(page, 'failure').catch(() => {});
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
for (const s of skipped) log(`skipped: ${s}`);
log(`screenshots: ${ARTIFACTS}`);
// Every step's backend exists now: a skipped step is a regression.
if (skipped.length) console.error('[journey] FAILED: steps were skipped');
process.exit(failed || skipped.length ? 1 : 0);
