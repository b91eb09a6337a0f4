// SPDX-License-Identifier: Apache-2.0
// Bench client for the JVM face (dev.marketplacemetering), following the peer benchmark's (bench/peers) client
// contract: env BENCH_ENDPOINT, BENCH_CALLS, BENCH_CONCURRENCY, BENCH_WARMUP; one JSON line out.
package bench;

import dev.marketplacemetering.MarketplaceMeteringClient;
import dev.marketplacemetering.StaticCredentialsProvider;
import dev.marketplacemetering.model.BatchMeterUsageRequest;
import dev.marketplacemetering.model.UsageRecord;
import java.lang.management.ManagementFactory;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

public final class MmBench {
  static int env(String name, int dflt) {
    String v = System.getenv(name);
    return v == null || v.isEmpty() ? dflt : Integer.parseInt(v);
  }

  static double cpuSeconds() {
    return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean())
            .getProcessCpuTime()
        / 1e9;
  }

  // CPU time of the threads that made the calls (the JVM side of each call: the face, JNA, the
  // wait), without the native runtime's threads, the JIT and the GC; ns.
  static final AtomicLong callerCpuNanos = new AtomicLong();

  static long threadCpu() {
    return ManagementFactory.getThreadMXBean().getCurrentThreadCpuTime();
  }

  static void run(MarketplaceMeteringClient client, BatchMeterUsageRequest req, int calls, int conc)
      throws InterruptedException {
    if (conc <= 1) {
      long c0 = threadCpu();
      for (int i = 0; i < calls; i++) one(client, req);
      callerCpuNanos.addAndGet(threadCpu() - c0);
      return;
    }
    AtomicInteger next = new AtomicInteger();
    List<Thread> threads = new ArrayList<>();
    for (int t = 0; t < conc; t++) {
      Thread th = new Thread(() -> {
        long c0 = threadCpu();
        while (next.getAndIncrement() < calls) one(client, req);
        callerCpuNanos.addAndGet(threadCpu() - c0);
      });
      th.start();
      threads.add(th);
    }
    for (Thread th : threads) th.join();
  }

  static void one(MarketplaceMeteringClient client, BatchMeterUsageRequest req) {
    try {
      int n = client.batchMeterUsageBlocking(req).getResults().size();
      if (n != 25) throw new IllegalStateException("unexpected result count " + n);
    } catch (RuntimeException e) {
      System.err.println("call failed: " + e);
      System.exit(1);
    }
  }

  public static void main(String[] args) throws Exception {
    int calls = env("BENCH_CALLS", 2000);
    int conc = env("BENCH_CONCURRENCY", 1);
    int warmup = env("BENCH_WARMUP", 50);
    Instant hour = Instant.now().truncatedTo(ChronoUnit.HOURS);
    List<UsageRecord> records = new ArrayList<>();
    for (int i = 0; i < 25; i++) records.add(new UsageRecord(hour, "c-" + i, "users", 1));
    BatchMeterUsageRequest req = new BatchMeterUsageRequest("prod-123", records);
    try (MarketplaceMeteringClient client =
        MarketplaceMeteringClient.builder()
            .region("us-east-1")
            .endpointUrl(System.getenv("BENCH_ENDPOINT"))
            .credentialsProvider(new StaticCredentialsProvider("AKIDBENCH", "bench-secret"))
            .maxAttempts(1)
            .build()) {
      run(client, req, warmup, conc);
      callerCpuNanos.set(0);
      double cpu0 = cpuSeconds();
      long t0 = System.nanoTime();
      run(client, req, calls, conc);
      double secs = (System.nanoTime() - t0) / 1e9;
      double cpu = cpuSeconds() - cpu0;
      System.out.printf(
          "{\"calls\": %d, \"seconds\": %.6f, \"calls_per_sec\": %.2f, \"cpu_seconds\": %.6f, \"caller_cpu_seconds\": %.6f, \"concurrency\": %d, \"warmup\": %d}%n",
          calls, secs, calls / secs, cpu, callerCpuNanos.get() / 1e9, conc, warmup);
    }
    System.exit(0);
  }
}
