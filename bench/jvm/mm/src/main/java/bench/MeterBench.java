// SPDX-License-Identifier: Apache-2.0
// UsageMeter.record() calls/s from Java, per store and durability, then one flush of what was
// recorded to the in-process emulator: the same cases as bench/python/meter_bench.py (the
// in-memory store from 1 and THREADS threads, a file store with durability MEMORY from 1,
// GROUP from THREADS threads sharing commits, DURABLE from 1; the last two also with
// powerLossSafe(false): no fsync per commit). Each case records for SECONDS
// into 50 customers x 3 dimensions of one hour, after a 1-second warm-up on the same meter
// that is not counted, moves the meter's clock past the hour and flushes; the emulator's
// ledger must bill exactly what was recorded. One JSON line per case.
//   bench/jvm/setup.sh, then:
//   java -cp "bench/jvm/mm/target/classes:$(cat bench/jvm/mm/target/cp.txt)" bench.MeterBench [SECONDS] [THREADS]
package bench;

import dev.marketplacemetering.Durability;
import dev.marketplacemetering.FlushSummary;
import dev.marketplacemetering.MarketplaceMeteringClient;
import dev.marketplacemetering.UsageMeter;
import dev.marketplacemetering.testing.Emulator;
import dev.marketplacemetering.testing.LedgerEntry;
import dev.marketplacemetering.testing.ManualClock;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.concurrent.atomic.AtomicBoolean;

public final class MeterBench {
  private static final String[] DIMENSIONS = {"users", "gb", "requests"};

  private MeterBench() {}

  public static void main(String[] args) throws Exception {
    double seconds = args.length > 0 ? Double.parseDouble(args[0]) : 2.0;
    int threads = args.length > 1 ? Integer.parseInt(args[1]) : 8;
    Path dir = Files.createTempDirectory("mm-meter-bench-");
    try (Emulator emu = new Emulator();
        MarketplaceMeteringClient client = emu.client()) {
      run(emu, client, "memory store", null, Durability.DURABLE, 1, seconds, true);
      run(emu, client, "memory store", null, Durability.DURABLE, threads, seconds, true);
      run(emu, client, "file, durability=memory", dir.resolve("m.db"), Durability.MEMORY, 1, seconds, true);
      run(emu, client, "file, durability=group", dir.resolve("g.db"), Durability.GROUP, threads, seconds, true);
      run(emu, client, "file, durability=group, no fsync", dir.resolve("gn.db"), Durability.GROUP, threads, seconds, false);
      run(emu, client, "file, durability=durable", dir.resolve("d.db"), Durability.DURABLE, 1, seconds, true);
      run(emu, client, "file, durability=durable, no fsync", dir.resolve("dn.db"), Durability.DURABLE, 1, seconds, false);
    } finally {
      try (var files = Files.walk(dir)) {
        files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
      }
    }
  }

  private static long[] record(UsageMeter meter, int threads, double seconds) throws InterruptedException {
    String[] customers = new String[50];
    for (int i = 0; i < 50; i++) customers[i] = "cust-" + (i + 1);
    AtomicBoolean stop = new AtomicBoolean();
    long[] counts = new long[threads];
    Thread[] workers = new Thread[threads];
    long t0 = System.nanoTime();
    for (int k = 0; k < threads; k++) {
      final int kk = k;
      workers[k] = new Thread(() -> {
        long n = 0;
        while (!stop.get()) {
          for (int i = 0; i < 600; i++) meter.record(customers[(i + kk) % 50], DIMENSIONS[i % 3], 1L);
          n += 600;
        }
        counts[kk] = n;
      });
      workers[k].start();
    }
    Thread.sleep((long) (seconds * 1000));
    stop.set(true);
    long total = 0;
    for (int k = 0; k < threads; k++) {
      workers[k].join();
      total += counts[k];
    }
    return new long[] {total, System.nanoTime() - t0};
  }

  private static void run(Emulator emu, MarketplaceMeteringClient client, String name, Path path,
      Durability durability, int threads, double seconds, boolean powerLossSafe) throws Exception {
    Instant hour = Instant.now().truncatedTo(ChronoUnit.HOURS).minus(Duration.ofHours(2));
    ManualClock clock = new ManualClock(hour);
    try (UsageMeter meter = UsageMeter.builder(client).path(path).productCode(Emulator.PRODUCT_CODE)
        .durability(durability).powerLossSafe(powerLossSafe).flushInterval(Duration.ZERO).clock(clock).build()) {
      long warm = record(meter, threads, 1.0)[0];
      long[] measured = record(meter, threads, seconds);
      clock.advance(Duration.ofMinutes(66));
      emu.reset();
      long f0 = System.nanoTime();
      FlushSummary summary = meter.flush();
      double flushS = (System.nanoTime() - f0) / 1e9;
      long billed = 0;
      for (LedgerEntry e : emu.ledger()) billed += e.getQuantity();
      if (billed != warm + measured[0]) {
        throw new IllegalStateException(name + ": billed " + billed + ", recorded " + (warm + measured[0]));
      }
      System.out.printf("{\"case\": \"%s\", \"threads\": %d, \"calls\": %d, \"calls_per_s\": %d, "
              + "\"flushed_buckets\": %d, \"flush_s\": %.3f, \"billed_matches\": true}%n",
          name, threads, measured[0], Math.round(measured[0] / (measured[1] / 1e9)), summary.getAcked(), flushS);
    }
  }
}
