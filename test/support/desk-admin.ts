import type { Role } from '../../src/domain/access.js';
import type { TestPlatform } from './platform.js';

/** An operator of the desk with a role and hospitals, and a live session (cookie value + CSRF token). */
export interface AdminDeskUser {
  username: string;
  password: string;
  /** The session token (cookie hospay_finance). */
  session: string;
  cookie: string;
  csrf: string;
}

/** Creates an operator through the platform's repository and opens a session for it. */
export async function adminDeskUser(
  t: TestPlatform,
  username: string,
  role: Role,
  apps: 'all' | string[],
): Promise<AdminDeskUser> {
  const password = `pw-${username}-0123456789`;
  await t.platform.deps.operators.create({ username, displayName: `测试 ${username}`, password, role, apps });
  const s = await t.platform.deps.operators.createSession(username);
  return { username, password, session: s.token, cookie: `hospay_finance=${s.token}`, csrf: s.csrfToken };
}

export interface Answer {
  status: number;
  location: string;
  text: string;
  headers: Headers;
}

async function answer(res: Response): Promise<Answer> {
  return {
    status: res.status,
    location: res.headers.get('location') ?? '',
    text: await res.text(),
    headers: res.headers,
  };
}

export async function get(t: TestPlatform, user: AdminDeskUser | null, path: string): Promise<Answer> {
  return answer(
    await fetch(`${t.url}${path}`, { redirect: 'manual', headers: user ? { cookie: user.cookie } : {} }),
  );
}

/** POSTs a form as the user, with the session's CSRF token unless `csrf` says otherwise (null: none). */
export async function post(
  t: TestPlatform,
  user: AdminDeskUser | null,
  path: string,
  fields: Record<string, string> = {},
  csrf: string | null | undefined = user?.csrf,
): Promise<Answer> {
  const body = new URLSearchParams({ ...(csrf == null ? {} : { csrf }), ...fields });
  return answer(
    await fetch(`${t.url}${path}`, {
      method: 'POST',
      redirect: 'manual',
      headers: {
        ...(user ? { cookie: user.cookie } : {}),
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: body.toString(),
    }),
  );
}

/** The text of the show-once box of a page (an AccessToken or a password), '' if none. */
export function secretOnce(html: string): string {
  const m = /<div class="secret-once" id="secret-once">([^<]*)<\/div>/.exec(html);
  return m?.[1] ?? '';
}

/** The value of a hidden input of the page. */
export function hiddenValue(html: string, name: string): string {
  const m = new RegExp(`<input type="hidden" name="${name}" value="([^"]*)"`).exec(html);
  return m?.[1] ?? '';
}

// One way to launch the browser for every desk test (test/support/desk.ts).
export { CHROMIUM, chromiumSkip as browserSkip, launchChromium as launchHeadless } from './desk.js';
