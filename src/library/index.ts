/**
 * The library's public surface (`import { capture } from 'pgcdc'`, docs/library.md): what a
 * program embedding pgcdc may use. Everything else in src/ is internal and may change.
 */
export { capture } from './capture.ts';
export type {
  CaptureHandle,
  CaptureOptions,
  CaptureSettings,
  ParsedCaptureOptions,
  RawBatch,
  RawCaptureOptions,
} from './capture.ts';
export type {
  AnyRow,
  CdcEvent,
  CdcOp,
  ChangeSource,
  CreateEvent,
  DeleteEvent,
  MessageEvent,
  OldRow,
  ReadEvent,
  RowChangeEvent,
  SchemaChangeEvent,
  SchemaColumn,
  TransactionBlock,
  TransactionEvent,
  TruncateEvent,
  UpdateEvent,
} from './events.ts';
export { HandlerError, type HandlerErrorAction } from './handler-sink.ts';
export type { RunStatus } from './run.ts';
export { CdcError, type ErrorCode } from '../core/errors.ts';
export type { EngineEvent, EngineState } from '../core/engine-events.ts';
export type { ConfigInput } from '../config.ts';
