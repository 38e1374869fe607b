/** The `hospay` commands (each answers `hospay <command> --help`). */
export const COMMANDS: readonly string[] = [
  'serve',
  'app',
  'migrate',
  'keys',
  'notify',
  'channel',
  'his-sim',
  'reconcile',
  'report',
  'operator',
  'backup',
  'restore',
];

/**
 * The line printed after a usage error, under the one-line error: where the help is. The help itself is not
 * printed there, as it would bury the error.
 */
export function helpPointer(cmd: string | undefined): string {
  const where = cmd !== undefined && COMMANDS.includes(cmd) ? `hospay ${cmd} --help` : 'hospay --help';
  return `用法见 / for usage: ${where}`;
}
