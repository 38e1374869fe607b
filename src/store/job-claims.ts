import type { Db } from './db.js';

/**
 * Claims of scheduled work (job_claims): a (job, key) pair is claimed by one owner once, across instances, and
 * finished with a result (JSON text) the next attempt may read.
 */
export class JobClaimRepository {
  constructor(private readonly db: Db) {}

  /** Claims (job, key) for `owner`; false when it was claimed before (by anyone). */
  async claim(job: string, key: string, owner: string, now: Date): Promise<boolean> {
    const claimed = await this.db
      .insertInto('job_claims')
      .values({ job, key, owner, claimed_at: now, finished_at: null, result: null })
      .onConflict((oc) => oc.columns(['job', 'key']).doNothing())
      .returning('key')
      .executeTakeFirst();
    return claimed !== undefined;
  }

  /** The claims of `job` whose key is `key` or starts with `key#` (its retries). */
  async attempts(
    job: string,
    key: string,
  ): Promise<Array<{ key: string; finished_at: Date | null; result: string | null }>> {
    return this.db
      .selectFrom('job_claims')
      .select(['key', 'finished_at', 'result'])
      .where('job', '=', job)
      .where((eb) => eb.or([eb('key', '=', key), eb('key', 'like', `${key}#%`)]))
      .execute();
  }

  /** Marks a claim finished with its result. */
  async finish(job: string, key: string, now: Date, result: string): Promise<void> {
    await this.db
      .updateTable('job_claims')
      .set({ finished_at: now, result })
      .where('job', '=', job)
      .where('key', '=', key)
      .execute();
  }
}
