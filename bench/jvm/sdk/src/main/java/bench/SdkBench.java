// SPDX-License-Identifier: Apache-2.0
// Bench client for the AWS SDK for Java v2, following the peer benchmark's (bench/peers) client contract:
// env BENCH_ENDPOINT, BENCH_CALLS, BENCH_CONCURRENCY, BENCH_WARMUP; one JSON line out.
//
// STAND-IN: software.amazon.awssdk:marketplacemetering is not served by the Maven repository this
// machine reaches, so this runs Firehose PutRecordBatch, a v2 service client of the same protocol family
// (awsJson1.1, SigV4, same generated marshallers and unmarshallers), with a batch of 25 records per call,
// each record's data the JSON of one usage record (about the size of a BatchMeterUsage record).
// The canned responder answers every POST with the 4.5 kB BatchMeterUsage body; the SDK parses all of it
// and ignores the members Firehose does not model, so the check is: HTTP 200, the response parsed, and
// no failed records reported. Default HTTP client (apache5-client, the default in 2.59.1); BENCH_HTTP=urlconnection picks
// url-connection-client. Static credentials, region us-east-1, the SDK's default retry strategy.
package bench;

import java.lang.management.ManagementFactory;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.core.SdkBytes;
import software.amazon.awssdk.http.urlconnection.UrlConnectionHttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.firehose.FirehoseClient;
import software.amazon.awssdk.services.firehose.FirehoseClientBuilder;
import software.amazon.awssdk.services.firehose.model.PutRecordBatchRequest;
import software.amazon.awssdk.services.firehose.model.PutRecordBatchResponse;
import software.amazon.awssdk.services.firehose.model.Record;

public final class SdkBench {
  static int env(String name, int dflt) {
    String v = System.getenv(name);
    return v == null || v.isEmpty() ? dflt : Integer.parseInt(v);
  }

  static double cpuSeconds() {
    return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean())
            .getProcessCpuTime()
        / 1e9;
  }

  static void run(FirehoseClient client, PutRecordBatchRequest req, int calls, int conc)
      throws InterruptedException {
    if (conc <= 1) {
      for (int i = 0; i < calls; i++) one(client, req);
      return;
    }
    AtomicInteger next = new AtomicInteger();
    List<Thread> threads = new ArrayList<>();
    for (int t = 0; t < conc; t++) {
      Thread th = new Thread(() -> { while (next.getAndIncrement() < calls) one(client, req); });
      th.start();
      threads.add(th);
    }
    for (Thread th : threads) th.join();
  }

  static void one(FirehoseClient client, PutRecordBatchRequest req) {
    try {
      PutRecordBatchResponse r = client.putRecordBatch(req);
      if (!r.sdkHttpResponse().isSuccessful()) {
        throw new IllegalStateException("status " + r.sdkHttpResponse().statusCode());
      }
      Integer failed = r.failedPutCount();
      if (failed != null && failed != 0) throw new IllegalStateException("failed records " + failed);
    } catch (RuntimeException e) {
      System.err.println("call failed: " + e);
      System.exit(1);
    }
  }

  public static void main(String[] args) throws Exception {
    int calls = env("BENCH_CALLS", 2000);
    int conc = env("BENCH_CONCURRENCY", 1);
    int warmup = env("BENCH_WARMUP", 50);
    String http = System.getenv().getOrDefault("BENCH_HTTP", "apache");
    Instant hour = Instant.now().truncatedTo(ChronoUnit.HOURS);
    List<Record> records = new ArrayList<>();
    for (int i = 0; i < 25; i++) {
      String json = "{\"Timestamp\":" + hour.getEpochSecond() + ",\"CustomerIdentifier\":\"c-" + i
          + "\",\"Dimension\":\"users\",\"Quantity\":1}";
      records.add(Record.builder().data(SdkBytes.fromString(json, StandardCharsets.UTF_8)).build());
    }
    PutRecordBatchRequest req =
        PutRecordBatchRequest.builder().deliveryStreamName("prod-123").records(records).build();
    FirehoseClientBuilder b =
        FirehoseClient.builder()
            .region(Region.US_EAST_1)
            .endpointOverride(URI.create(System.getenv("BENCH_ENDPOINT")))
            .credentialsProvider(
                StaticCredentialsProvider.create(AwsBasicCredentials.create("AKIDBENCH", "bench-secret")));
    if (http.equals("urlconnection")) {
      b.httpClientBuilder(UrlConnectionHttpClient.builder());
    } else {
      // The SDK's own default (apache5-client in 2.59.1, default settings); named because url-connection-client is on the
      // classpath too, and the SDK refuses to guess between two implementations.
      System.setProperty(
          "software.amazon.awssdk.http.service.impl",
          "software.amazon.awssdk.http.apache5.Apache5SdkHttpService");
    }
    try (FirehoseClient client = b.build()) {
      run(client, req, warmup, conc);
      double cpu0 = cpuSeconds();
      long t0 = System.nanoTime();
      run(client, req, calls, conc);
      double secs = (System.nanoTime() - t0) / 1e9;
      double cpu = cpuSeconds() - cpu0;
      System.out.printf(
          "{\"calls\": %d, \"seconds\": %.6f, \"calls_per_sec\": %.2f, \"cpu_seconds\": %.6f, \"concurrency\": %d, \"warmup\": %d, \"http_client\": \"%s\"}%n",
          calls, secs, calls / secs, cpu, conc, warmup, http);
    }
    System.exit(0);
  }
}
