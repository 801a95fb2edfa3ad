// Kafka's own Java consumer as the Kafka bench's reader (bench/kafka.ts): reads the topics matching a
// regex with isolation.level=read_committed and prints ONE JSON line summarising them, so a million
// records never travel through a pipe:
//   {"records","tombstones","keyBytes","valueBytes","headerBytes","appendMs":[...],"receiptMs":[...]}
// keyBytes/valueBytes/headerBytes sum the key, value and header (key + value) lengths of every record.
// appendMs: per record with a value, record timestamp minus the event's source commit time (the
// "ts_ms" after "commit_lsn" in the value); with message.timestamp.type=LogAppendTime on the topic
// that is the broker's append time (the broker's clock, System.currentTimeMillis). receiptMs: this
// consumer's clock at the poll that returned the record minus the same commit time (only in follow
// mode). Both clocks are this machine's realtime clock, as is PostgreSQL's commit timestamp.
//
// Usage: java -cp 'test/kafka/target/lib/*' bench/KafkaTally.java <bootstrap> <topic regex> tally [latencies]
//          reads from the beginning up to the end offsets at start (the topics are complete); appendMs
//          is filled only with 'latencies'
//        java ... bench/KafkaTally.java <bootstrap> <topic regex> follow <n>
//          prints "ready" on stderr once assigned, then reads until n records with a value arrived
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class KafkaTally {
  private static final Pattern COMMIT_TS = Pattern.compile("\"commit_lsn\":\"[^\"]*\",\"ts_ms\":(\\d+)");

  public static void main(String[] args) throws Exception {
    boolean follow = args[2].equals("follow");
    long wanted = follow ? Long.parseLong(args[3]) : Long.MAX_VALUE;
    Properties props = new Properties();
    props.put("bootstrap.servers", args[0]);
    props.put("isolation.level", "read_committed");
    props.put("enable.auto.commit", "false");
    props.put("fetch.max.wait.ms", "5");
    props.put("max.poll.records", "10000");
    props.put("key.deserializer", ByteArrayDeserializer.class.getName());
    props.put("value.deserializer", ByteArrayDeserializer.class.getName());
    Pattern pattern = Pattern.compile(args[1]);
    long records = 0, tombstones = 0, keyBytes = 0, valueBytes = 0, headerBytes = 0, withValue = 0;
    StringBuilder append = new StringBuilder();
    StringBuilder receipt = new StringBuilder();
    try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
      List<TopicPartition> partitions = new ArrayList<>();
      for (Map.Entry<String, List<PartitionInfo>> topic : consumer.listTopics(Duration.ofSeconds(30)).entrySet()) {
        if (!pattern.matcher(topic.getKey()).matches()) continue;
        for (PartitionInfo info : topic.getValue()) partitions.add(new TopicPartition(info.topic(), info.partition()));
      }
      consumer.assign(partitions);
      consumer.seekToBeginning(partitions);
      Map<TopicPartition, Long> ends = new HashMap<>();
      if (!follow) {
        ends.putAll(consumer.endOffsets(partitions, Duration.ofSeconds(30)));
        ends.entrySet().removeIf(end -> consumer.position(end.getKey(), Duration.ofSeconds(30)) >= end.getValue());
      } else {
        for (TopicPartition partition : partitions) consumer.position(partition, Duration.ofSeconds(30));
        System.err.println("ready");
      }
      while (follow ? withValue < wanted : !ends.isEmpty()) {
        ConsumerRecords<byte[], byte[]> batch = consumer.poll(Duration.ofMillis(500));
        long now = System.currentTimeMillis();
        for (ConsumerRecord<byte[], byte[]> record : batch) {
          records++;
          if (record.key() != null) keyBytes += record.key().length;
          for (Header header : record.headers())
            headerBytes += header.key().length() + (header.value() == null ? 0 : header.value().length);
          if (record.value() == null) {
            tombstones++;
            continue;
          }
          withValue++;
          valueBytes += record.value().length;
          Matcher m = COMMIT_TS.matcher(new String(record.value(), StandardCharsets.UTF_8));
          if (!m.find()) continue;
          long committed = Long.parseLong(m.group(1));
          if (append.length() > 0) append.append(',');
          append.append(record.timestamp() - committed);
          if (follow) {
            if (receipt.length() > 0) receipt.append(',');
            receipt.append(now - committed);
          }
        }
        if (!follow)
          ends.entrySet().removeIf(end -> consumer.position(end.getKey(), Duration.ofSeconds(30)) >= end.getValue());
      }
    }
    boolean latencies = follow || args.length > 3 && args[3].equals("latencies");
    System.out.println(
        "{\"records\":" + records + ",\"tombstones\":" + tombstones + ",\"keyBytes\":" + keyBytes
            + ",\"valueBytes\":" + valueBytes + ",\"headerBytes\":" + headerBytes
            + ",\"appendMs\":[" + (latencies ? append : "") + "],\"receiptMs\":[" + receipt + "]}");
  }
}
