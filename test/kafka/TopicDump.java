// Kafka's own Java consumer as the tests' independent reader: prints every committed record of the
// topics matching a regex, from the beginning up to the last stable offset at start, one JSON line
// each: {"topic","partition","offset","timestamp","key","value","headers":{...}} (key, value and
// header values as UTF-8 text, null when absent), plus "defaultPartition": the partition Kafka's Java
// producer's default partitioner picks for the key (-1 for a null key). isolation.level=read_committed,
// so records of aborted or open transactions are never printed.
//
// Usage: java -cp 'test/kafka/target/lib/*' test/kafka/TopicDump.java <bootstrap> <topic regex>
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.regex.Pattern;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.utils.Utils;

public class TopicDump {
  public static void main(String[] args) throws Exception {
    Properties props = new Properties();
    props.put("bootstrap.servers", args[0]);
    props.put("isolation.level", "read_committed");
    props.put("enable.auto.commit", "false");
    props.put("key.deserializer", ByteArrayDeserializer.class.getName());
    props.put("value.deserializer", ByteArrayDeserializer.class.getName());
    Pattern pattern = Pattern.compile(args[1]);
    ObjectMapper json = new ObjectMapper();
    StringBuilder out = new StringBuilder();
    try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
      List<TopicPartition> partitions = new ArrayList<>();
      Map<String, Integer> partitionCounts = new HashMap<>();
      for (Map.Entry<String, List<PartitionInfo>> topic : consumer.listTopics(Duration.ofSeconds(30)).entrySet()) {
        if (!pattern.matcher(topic.getKey()).matches()) continue;
        partitionCounts.put(topic.getKey(), topic.getValue().size());
        for (PartitionInfo info : topic.getValue()) partitions.add(new TopicPartition(info.topic(), info.partition()));
      }
      consumer.assign(partitions);
      consumer.seekToBeginning(partitions);
      Map<TopicPartition, Long> ends = new HashMap<>(consumer.endOffsets(partitions, Duration.ofSeconds(30)));
      ends.entrySet().removeIf(end -> consumer.position(end.getKey(), Duration.ofSeconds(30)) >= end.getValue());
      while (!ends.isEmpty()) {
        for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(500))) {
          ObjectNode line = json.createObjectNode();
          line.put("topic", record.topic());
          line.put("partition", record.partition());
          line.put("offset", record.offset());
          line.put("timestamp", record.timestamp());
          line.put(
              "defaultPartition",
              record.key() == null
                  ? -1
                  : Utils.toPositive(Utils.murmur2(record.key())) % partitionCounts.get(record.topic()));
          line.put("key", record.key() == null ? null : new String(record.key(), StandardCharsets.UTF_8));
          line.put("value", record.value() == null ? null : new String(record.value(), StandardCharsets.UTF_8));
          ObjectNode headers = line.putObject("headers");
          for (Header header : record.headers())
            headers.put(header.key(), header.value() == null ? null : new String(header.value(), StandardCharsets.UTF_8));
          out.append(json.writeValueAsString(line)).append('\n');
        }
        ends.entrySet().removeIf(end -> consumer.position(end.getKey(), Duration.ofSeconds(30)) >= end.getValue());
      }
    }
    System.out.print(out);
  }
}
