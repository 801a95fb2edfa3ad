/** Every topic name comes from topicName: the tables' and the other event streams', in both namings. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { topicName, type TopicNaming } from '../../../src/envelope/topics.ts';

const byPrefix: TopicNaming = { prefix: 'shop', database: 'shopdb', naming: 'prefix' };
const byDatabase: TopicNaming = { ...byPrefix, naming: 'database' };

test('a table topic is <prefix>.<schema>.<table>, with <database>_ in front under database naming', () => {
  assert.equal(topicName(byPrefix, { schema: 'public', table: 'orders' }), 'shop.public.orders');
  assert.equal(topicName(byDatabase, { schema: 'public', table: 'orders' }), 'shopdb_shop.public.orders');
});

test('the message, transaction and schema-change streams have their own topics under the same prefix', () => {
  assert.equal(topicName(byPrefix, 'message'), 'shop.message');
  assert.equal(topicName(byPrefix, 'transaction'), 'shop.transaction');
  assert.equal(topicName(byPrefix, 'schema_changes'), 'shop.schema_changes');
  assert.equal(topicName(byDatabase, 'message'), 'shopdb_shop.message');
  assert.equal(topicName(byDatabase, 'transaction'), 'shopdb_shop.transaction');
  assert.equal(topicName(byDatabase, 'schema_changes'), 'shopdb_shop.schema_changes');
});

test('names are used as given: dots and case in a table name stay', () => {
  assert.equal(topicName(byPrefix, { schema: 'Sales', table: 'order.lines' }), 'shop.Sales.order.lines');
});
