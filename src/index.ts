/** The package entry point (`import { capture } from 'pgcdc'`): the library, docs/library.md. */
export * from './library/index.ts';
