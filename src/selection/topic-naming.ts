/**
 * How a capture names and shapes its events, from the configuration: the topic prefix (the database's name unless
 * `topic.prefix` is set), the naming scheme, the envelope options and the shaping rules with their table patterns.
 *
 * Pure configuration (no I/O), shared by the streaming run and snapshot mode initial_only (lifecycle/) and by
 * `pgcdc verify`, which must write the source's rows as the capture wrote them. It lives with the selection
 * because the shaping rules find their tables with the selection's patterns.
 */
import type { Config } from '../config.ts';
import { loadShaping } from '../envelope/shaping.ts';
import type { TopicNaming } from '../envelope/topics.ts';
import { parseTablePattern, tableMatches } from './patterns.ts';

/** The topic naming of a capture of `database` configured by `config`. */
export function topicNaming(config: Config, database: string): TopicNaming {
  return {
    prefix: config.topic.prefix ?? database,
    database,
    naming: config.topic.naming,
    envelope: {
      format: config.envelope.format,
      unavailableValue: config.toast.placeholder,
      type: config.envelope.type,
      deletes: config.envelope.deletes,
    },
    shaping: loadShaping(config.shaping, (text) => {
      const pattern = parseTablePattern(text);
      return (schema, table) => tableMatches(pattern, schema, table);
    }),
  };
}
