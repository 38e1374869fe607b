/** What a payer's (or patient's) browser does, redirects not followed: the tests look at every hop. */

/** A form POST as a browser sends it. */
export function postForm(url: string, body: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body,
  });
}

/** One hop: the answer's status and Location (the body is read and dropped). */
export interface Hop {
  status: number;
  location: string;
}

async function hop(r: Response): Promise<Hop> {
  await r.arrayBuffer();
  return { status: r.status, location: r.headers.get('location') ?? '' };
}

/** A form POST, as a hop. */
export async function submit(url: string, body: string): Promise<Hop> {
  return hop(await postForm(url, body));
}

/** A GET, as a hop. */
export async function visit(url: string): Promise<Hop> {
  return hop(await fetch(url, { redirect: 'manual' }));
}
