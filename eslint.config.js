// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * The folder rules (ARCHITECTURE.md, "Folder rules"): src/ by layer, lowest first. A folder imports
 * only folders of earlier layers; folders of one layer do not import each other. `sinks` here is the
 * contract (contract.ts, batch.ts, kind.ts, registry.ts); a sink kind (sinks/<kind>/) has its own rule.
 */
const LAYERS = [
  ['core'],
  ['protocol'],
  ['source'],
  ['postgres'],
  ['sinks'],
  ['envelope'],
  ['offsets'],
  ['selection'],
  ['snapshot'],
  ['pipeline'],
  ['preflight', 'setup', 'verify'],
  ['observability'],
  // Watching a capture from outside: the slot's health and alerts, then the metrics that read them.
  ['health'],
  ['metrics'],
  ['lifecycle'],
  ['embedded'],
  // The library's entry point (src/index.ts exports it) and the run that the CLI shares with it.
  ['library'],
  // `pgcdc run --http`: the status server and the dashboard's API, over the run's status.
  ['server'],
  ['cli'],
];

/**
 * An import of `folders` from anywhere below src/ (imports are relative: `../x/`, `../../x/`).
 * @param {string[]} folders
 */
const importOf = (folders) => `^(\\.\\./)+(${folders.join('|')})/`;

/**
 * The no-restricted-imports patterns of the files of `folder`.
 * @param {string} folder
 * @returns {{ regex: string, message: string, allowTypeImports?: boolean }[]}
 */
function folderPatterns(folder) {
  const layer = LAYERS.findIndex((l) => l.includes(folder));
  const forbidden = LAYERS.flatMap((l, i) => (i > layer ? l : i === layer ? l.filter((f) => f !== folder) : []));
  const patterns = [];
  if (forbidden.length > 0) {
    patterns.push({
      regex: importOf(forbidden),
      message: `${folder}/ may import only folders of earlier layers (ARCHITECTURE.md, "Folder rules")`,
    });
  }
  if (folder !== 'cli') {
    patterns.push({
      regex: '^(\\.\\./)+sinks/([^/]+/|registry\\.ts$)',
      message: 'only the CLI picks sink kinds (through sinks/registry.ts); the rest of pgcdc sees the Sink contract',
    });
  }
  // config.ts composes every component's config schema: below the CLI and the library (the two
  // entry points that validate a user's configuration), only its types are used.
  if (folder !== 'cli' && folder !== 'library') {
    patterns.push({
      regex: '^(\\.\\./)+config\\.ts$',
      allowTypeImports: true,
      message: `below the CLI, import only types from config.ts (each component owns its schema and helpers)`,
    });
  }
  return patterns;
}

const folderRules = [
  ...LAYERS.flat().map((folder) => ({
    files: folder === 'sinks' ? ['src/sinks/*.ts'] : [`src/${folder}/**/*.ts`],
    rules: { '@typescript-eslint/no-restricted-imports': ['error', { patterns: folderPatterns(folder) }] },
  })),
  {
    // A sink kind uses the core and the sink contract only: never another kind, never the engine.
    files: ['src/sinks/*/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '^(\\.\\./\\.\\./(?!core/)|\\.\\./[^./][^/]*/|\\.\\./registry\\.ts$)',
              message: 'a sink kind imports only core/ and the sink contract (sinks/contract.ts, batch.ts, kind.ts)',
            },
          ],
        },
      ],
    },
  },
];

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'pgcdc-demo/**', 'bin/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: { allowDefaultProject: ['eslint.config.js'] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      // Ack ordering depends on every promise being awaited or handled on purpose.
      '@typescript-eslint/no-floating-promises': [
        'error',
        // node:test's test()/describe() return promises the runner itself tracks.
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  ...folderRules,
  {
    // Prettier wraps code at 120 columns but leaves long strings, templates, regexes and comments alone.
    rules: {
      'max-len': [
        'error',
        {
          code: 120,
          tabWidth: 2,
          ignoreUrls: false,
          ignoreComments: false,
          ignoreStrings: false,
          ignoreTemplateLiterals: false,
          ignoreRegExpLiterals: false,
        },
      ],
    },
  },
  {
    // The dashboard: plain browser JavaScript (no build step, no type information), served as is.
    files: ['dashboard/**/*.js'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      parserOptions: { projectService: false, project: false },
      sourceType: 'module',
      globals: Object.fromEntries(
        ['window', 'document', 'fetch', 'sessionStorage', 'setTimeout', 'setInterval', 'URL', 'console'].map((name) => [
          name,
          'readonly',
        ]),
      ),
    },
  },
);
