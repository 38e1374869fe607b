import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import boundaries from 'eslint-plugin-boundaries';

/** Every layer below the composition roots (main.ts, cli/). */
const BELOW_ROOTS = [
  'domain',
  'crypto',
  'runtime',
  'formats',
  'logging',
  'metrics',
  'tracing',
  'config',
  'store',
  'channels',
  'simulator',
  'services',
  'reconcile',
  'http',
  'jobs',
];

/**
 * The layers of src/, bottom to top (docs/ARCHITECTURE.md, "Layers"). A folder may import itself and what its
 * `mayImport` names, nothing else: no arrow runs back up. main.ts and cli/ are the composition roots.
 */
export const LAYERS = [
  { type: 'domain', pattern: 'src/domain', mayImport: [] },
  { type: 'crypto', pattern: 'src/crypto', mayImport: ['domain'] },
  { type: 'runtime', pattern: 'src/runtime', mayImport: ['domain'] },
  { type: 'formats', pattern: 'src/formats', mayImport: ['domain'] },
  { type: 'logging', pattern: 'src/logging.ts', mayImport: ['domain', 'formats'] },
  // The Prometheus registry and metric objects: every layer above domain may record; it imports no project file.
  { type: 'metrics', pattern: 'src/metrics.ts', mayImport: [] },
  // OpenTelemetry (off by default, loaded only when on): started by the composition roots.
  { type: 'tracing', pattern: 'src/tracing.ts', mayImport: ['domain', 'formats', 'logging', 'config'] },
  { type: 'config', pattern: 'src/config', mayImport: ['domain', 'crypto', 'runtime'] },
  {
    type: 'store',
    pattern: 'src/store',
    mayImport: ['domain', 'crypto', 'runtime', 'formats', 'logging', 'metrics', 'config'],
  },
  {
    type: 'channels',
    pattern: 'src/channels',
    mayImport: ['domain', 'crypto', 'formats', 'logging', 'metrics'],
  },
  {
    type: 'simulator',
    pattern: 'src/simulator',
    mayImport: ['domain', 'crypto', 'formats', 'logging', 'metrics', 'store', 'channels'],
  },
  {
    type: 'services',
    pattern: 'src/services',
    mayImport: ['domain', 'crypto', 'formats', 'logging', 'metrics', 'config', 'store', 'channels'],
  },
  {
    type: 'reconcile',
    pattern: 'src/reconcile',
    mayImport: ['domain', 'crypto', 'formats', 'logging', 'metrics', 'config', 'store', 'channels'],
  },
  {
    type: 'http',
    pattern: 'src/http',
    mayImport: [
      'domain',
      'crypto',
      'formats',
      'logging',
      'metrics',
      'config',
      'channels',
      'simulator',
      'services',
      'reconcile',
    ],
  },
  {
    type: 'jobs',
    pattern: 'src/jobs',
    mayImport: ['domain', 'logging', 'metrics', 'config', 'services', 'reconcile'],
  },
  // The composition roots wire every layer below them.
  { type: 'main', pattern: 'src/main.ts', mayImport: BELOW_ROOTS },
  { type: 'cli', pattern: 'src/cli', mayImport: [...BELOW_ROOTS, 'main'] },
];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'error',
    },
  },
  {
    files: ['src/cli/**', 'scripts/**', 'bench/**', 'bin/**'],
    rules: { 'no-console': 'off' },
  },
  // The layers (docs/ARCHITECTURE.md): each folder of src/ says what it may import. A break fails `npm run lint`.
  {
    files: ['src/**/*.ts'],
    plugins: { boundaries },
    settings: {
      'import/resolver': { typescript: { project: './tsconfig.json' } },
      // main.ts, logging.ts and metrics.ts are single files: described with the file mode, which warns as legacy.
      'boundaries/legacy-warnings': false,
      'boundaries/elements': LAYERS.map(({ type, pattern }) =>
        pattern.endsWith('.ts') ? { type, pattern, mode: 'file' } : { type, pattern, partialMatch: false },
      ),
    },
    rules: {
      'boundaries/no-unknown-files': 'error',
      'boundaries/no-unknown-dependencies': 'error',
      'boundaries/dependencies': [
        'error',
        {
          default: 'disallow',
          message: '{{from.type}}/ may not import {{to.type}}/ (docs/ARCHITECTURE.md, "Layers")',
          policies: LAYERS.map(({ type, mayImport }) => ({
            from: { element: { type } },
            allow: { to: { element: { types: { anyOf: [type, ...mayImport] } } } },
          })),
        },
      ],
    },
  },
  {
    files: ['src/domain/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['fastify', 'kysely', 'pg', '@electric-sql/pglite', 'pino'],
              message: 'domain/ is pure: no I/O libraries.',
            },
          ],
        },
      ],
    },
  },
);
