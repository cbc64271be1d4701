// Drives Vuoro's chat widget in headless Chromium, as a customer would, for
// channels/tests/browser.rs. Usage: node chat.mjs <widget page URL>
//
// Talks with the Rust test over lines: it prints `queued <conversation> <status line>`,
// `joined`, `sent`, `reloaded`, `rated` as it gets there, and waits for `reload` on stdin
// before reloading the page (the Rust side first checks the customer's message reached the
// agent). Any failure prints `FAIL <why>` on stderr and exits 1.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const url = process.argv[2];
if (!url) {
  console.error('FAIL usage: node chat.mjs <widget page URL>');
  process.exit(2);
}
const STEP_MS = 30_000;
const commands = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function command(expected) {
  const { value, done } = await commands.next();
  if (done || value.trim() !== expected) throw new Error(`expected "${expected}" on stdin, got ${done ? 'EOF' : value}`);
}

const profile = mkdtempSync(join(tmpdir(), 'vuoro-chat-chromium-'));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = context.pages()[0] ?? await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  const transcript = page.getByRole('log', { name: 'Conversation' });
  const status = page.getByRole('status');

  await page.goto(url);
  await page.getByLabel('Your name').fill('Alex Example');
  await page.getByLabel('Language').selectOption('en');
  await page.getByLabel('How can we help?').fill('Hello, my order 1234 has not arrived yet.');
  await page.getByRole('button', { name: 'Start chat' }).click();

  // The place in the queue and the wait, live.
  await status.filter({ hasText: /You are number \d+ in the queue — about \d+ min\./ }).waitFor();
  const conversation = await page.evaluate(() => {
    const key = Object.keys(sessionStorage).find((k) => k.startsWith('vuoro-chat:'));
    return JSON.parse(sessionStorage.getItem(key)).conversation;
  });
  console.log(`queued ${conversation} ${await status.textContent()}`);

  // The agent joins and answers.
  await transcript.getByText('An agent has joined the conversation.').waitFor();
  await transcript.getByText('Agent: Hello Alex, let me check your order.').waitFor();
  if (!(await status.textContent()).includes('An agent has joined')) throw new Error('the status line did not change');
  console.log('joined');

  await page.getByLabel('Message').fill('Thanks, it was due on Monday.');
  await page.getByRole('button', { name: 'Send' }).click();
  await transcript.getByText('You: Thanks, it was due on Monday.').waitFor();
  console.log('sent');

  // A reload mid-conversation keeps the transcript and resumes it.
  await command('reload');
  await page.reload();
  await transcript.getByText('Agent: Hello Alex, let me check your order.').waitFor();
  await transcript.getByText('You: Thanks, it was due on Monday.').waitFor();
  const lines = await transcript.locator('li').allTextContents();
  const once = lines.filter((l) => l === 'Agent: Hello Alex, let me check your order.').length;
  if (once !== 1) throw new Error(`the agent's reply is shown ${once} times after the reload: ${JSON.stringify(lines)}`);
  console.log('reloaded');

  // New replies still arrive; after the end the customer rates the chat.
  await transcript.getByText('Agent: It ships tomorrow.').waitFor();
  await transcript.getByText('This conversation is closed. Thank you for contacting us!').waitFor();
  await page.getByRole('button', { name: 'Rate 4 of 5' }).click();
  await page.getByText('Thank you for your rating!').waitFor();
  if (await page.getByRole('button', { name: 'Rate 4 of 5' }).isVisible()) throw new Error('the rating stayed open');
  console.log('rated');
} catch (error) {
  console.error(`FAIL ${error.stack ?? error}`);
  process.exitCode = 1;
} finally {
  await context?.close();
  rmSync(profile, { recursive: true, force: true });
  process.exit(process.exitCode ?? 0);
}
