package dev.pgcdc.bench;

import io.debezium.engine.ChangeEvent;
import io.debezium.engine.DebeziumEngine;
import io.debezium.engine.format.Json;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * The Debezium peer of bench/peers.ts: Debezium's embedded engine (PostgreSQL connector, pgoutput)
 * with the JSON format, writing each change's value JSON as one line to a file and fdatasyncing
 * (FileChannel.force(false)) once per batch the engine hands over, before marking the batch
 * processed (so the offsets the engine stores, and the LSN it confirms to the slot, only cover
 * durable lines).
 *
 * <p>Usage: DebeziumBench <engine.properties> <output file> <expected records>. Prints "done N" on
 * standard output once N >= expected records are durable, then halts (the bench times spawn to that
 * line; the engine's orderly shutdown is not part of the measurement).
 */
public final class DebeziumBench {
  private DebeziumBench() {}

  /** The batch consumer: one write and one fdatasync per batch. */
  private static final class FileConsumer
      implements DebeziumEngine.ChangeConsumer<ChangeEvent<String, String>> {
    private final FileChannel channel;
    private final long expected;
    private final CountDownLatch done;
    private long count;

    FileConsumer(FileChannel channel, long expected, CountDownLatch done) {
      this.channel = channel;
      this.expected = expected;
      this.done = done;
    }

    @Override
    public synchronized void handleBatch(
        List<ChangeEvent<String, String>> records,
        DebeziumEngine.RecordCommitter<ChangeEvent<String, String>> committer)
        throws InterruptedException {
      ByteArrayOutputStream batch = new ByteArrayOutputStream(records.size() * 256);
      long lines = 0;
      for (ChangeEvent<String, String> record : records) {
        String value = record.value();
        // A tombstone (null value) is not a change; none occur without deletes.
        if (value == null) continue;
        batch.writeBytes(value.getBytes(StandardCharsets.UTF_8));
        batch.write('\n');
        lines++;
      }
      try {
        ByteBuffer buffer = ByteBuffer.wrap(batch.toByteArray());
        while (buffer.hasRemaining()) channel.write(buffer);
        channel.force(false);
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
      for (ChangeEvent<String, String> record : records) committer.markProcessed(record);
      committer.markBatchFinished();
      count += lines;
      if (count >= expected) done.countDown();
    }

    synchronized long count() {
      return count;
    }
  }

  public static void main(String[] args) throws Exception {
    if (args.length != 3) {
      System.err.println("usage: DebeziumBench <engine.properties> <output file> <expected records>");
      System.exit(2);
    }
    Properties props = new Properties();
    try (InputStream in = Files.newInputStream(Path.of(args[0]))) {
      props.load(in);
    }
    long expected = Long.parseLong(args[2]);
    CountDownLatch done = new CountDownLatch(1);
    FileChannel channel =
        FileChannel.open(
            Path.of(args[1]),
            StandardOpenOption.CREATE,
            StandardOpenOption.WRITE,
            StandardOpenOption.APPEND);
    FileConsumer consumer = new FileConsumer(channel, expected, done);
    String[] failure = new String[1];
    DebeziumEngine<ChangeEvent<String, String>> engine =
        DebeziumEngine.create(Json.class)
            .using(props)
            .notifying(consumer)
            .using(
                (success, message, error) -> {
                  // The engine stopped before the bench had every record: report why and end.
                  if (consumer.count() < expected) {
                    failure[0] = message + (error == null ? "" : ": " + error);
                    done.countDown();
                  }
                })
            .build();
    ExecutorService executor = Executors.newSingleThreadExecutor();
    executor.execute(engine);
    done.await();
    if (failure[0] != null) {
      System.err.println("debezium stopped after " + consumer.count() + " records: " + failure[0]);
      Runtime.getRuntime().halt(1);
    }
    System.out.println("done " + consumer.count());
    System.out.flush();
    Runtime.getRuntime().halt(0);
  }
}
