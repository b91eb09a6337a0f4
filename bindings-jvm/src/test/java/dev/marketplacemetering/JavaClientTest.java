// SPDX-License-Identifier: Apache-2.0
// The face as Java sees it: builders, blocking and CompletableFuture forms, and the bad input
// a Java caller can pass (null anywhere, empty lists, too many records): always the face's
// exception naming the field, never a NullPointerException or a crash.
package dev.marketplacemetering;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.marketplacemetering.model.BatchMeterUsageRequest;
import dev.marketplacemetering.model.BatchMeterUsageResponse;
import dev.marketplacemetering.model.MeterUsageRequest;
import dev.marketplacemetering.model.RegisterUsageRequest;
import dev.marketplacemetering.model.ResolveCustomerRequest;
import dev.marketplacemetering.model.Tag;
import dev.marketplacemetering.model.UsageAllocation;
import dev.marketplacemetering.model.UsageRecord;
import dev.marketplacemetering.model.UsageRecordResultStatus;
import dev.marketplacemetering.testing.Emulator;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class JavaClientTest {
  static Emulator emulator;
  static MarketplaceMeteringClient client;
  static final Instant HOUR = Instant.now().truncatedTo(ChronoUnit.HOURS);

  @BeforeAll
  static void start() {
    emulator = new Emulator();
    client = emulator.clientBuilder().maxAttempts(1).build();
  }

  @AfterAll
  static void stop() {
    client.close();
    emulator.close();
  }

  @BeforeEach
  void reset() {
    emulator.reset();
  }

  static UsageRecord record(String customer, String dimension, Integer quantity) {
    return UsageRecord.builder()
        .timestamp(HOUR)
        .customerIdentifier(customer)
        .dimension(dimension)
        .quantity(quantity)
        .build();
  }

  static BatchMeterUsageRequest batch(List<UsageRecord> records) {
    return BatchMeterUsageRequest.builder()
        .productCode(Emulator.PRODUCT_CODE)
        .usageRecords(records)
        .build();
  }

  static InvalidInputException invalid(Runnable call) {
    return assertThrows(InvalidInputException.class, call::run);
  }

  @Test
  void everyOperationBlocking() {
    BatchMeterUsageResponse out =
        client.batchMeterUsageBlocking(batch(List.of(record("cust-1", "users", 2))));
    assertEquals(UsageRecordResultStatus.Success.INSTANCE, out.getResults().get(0).getStatus());
    assertNotNull(out.getResponseMetadata().getRequestId());
    assertNotNull(
        client
            .meterUsageBlocking(
                MeterUsageRequest.builder()
                    .productCode(Emulator.PRODUCT_CODE)
                    .timestamp(HOUR)
                    .usageDimension("gb")
                    .usageQuantity(4)
                    .build())
            .getMeteringRecordId());
    assertEquals(
        "cust-1",
        client
            .resolveCustomerBlocking(new ResolveCustomerRequest(Emulator.REGISTRATION_TOKEN))
            .getCustomerIdentifier());
    assertNotNull(
        client
            .registerUsageBlocking(new RegisterUsageRequest(Emulator.PRODUCT_CODE, 1, "nonce"))
            .getSignature());
    assertEquals(2, emulator.ledger().size());
  }

  @Test
  void everyOperationAsCompletableFuture() throws Exception {
    CompletableFuture<BatchMeterUsageResponse> b =
        client.batchMeterUsageAsync(batch(List.of(record("cust-1", "users", 2))));
    CompletableFuture<String> r =
        client
            .resolveCustomerAsync(new ResolveCustomerRequest(Emulator.REGISTRATION_TOKEN))
            .thenApply(x -> x.getCustomerIdentifier());
    assertEquals("cust-1", r.get(10, TimeUnit.SECONDS));
    assertEquals(1, b.get(10, TimeUnit.SECONDS).getResults().size());
    assertNotNull(
        client
            .meterUsageAsync(new MeterUsageRequest(Emulator.PRODUCT_CODE, HOUR, "requests", 1))
            .get(10, TimeUnit.SECONDS)
            .getMeteringRecordId());
    assertNotNull(
        client
            .registerUsageAsync(new RegisterUsageRequest(Emulator.PRODUCT_CODE, 1))
            .get(10, TimeUnit.SECONDS)
            .getSignature());
    // A failure completes the future exceptionally with the face's exception.
    ExecutionException e =
        assertThrows(
            ExecutionException.class,
            () -> client.resolveCustomerAsync(new ResolveCustomerRequest("")).get(10, TimeUnit.SECONDS));
    assertInstanceOf(InvalidInputException.class, e.getCause());
  }

  @Test
  void nullWhereTheModelRequiresAValue() {
    assertEquals(
        "UsageRecords[0].Timestamp",
        invalid(() -> client.batchMeterUsageBlocking(batch(List.of(new UsageRecord(null, "cust-1", "users", 1))))).getField());
    assertEquals(
        "UsageRecords[0].Dimension",
        invalid(() -> client.batchMeterUsageBlocking(batch(List.of(record("cust-1", null, 1))))).getField());
    assertEquals(
        "UsageRecords[1]",
        invalid(() -> client.batchMeterUsageBlocking(batch(Arrays.asList(record("cust-1", "users", 1), null)))).getField());
    assertEquals(
        "UsageRecords[0].UsageAllocations[0].Tags[0].Value",
        invalid(
                () ->
                    client.batchMeterUsageBlocking(
                        batch(
                            List.of(
                                record("cust-1", "users", 1).toBuilder()
                                    .usageAllocations(List.of(new UsageAllocation(1, List.of(new Tag("k", null)))))
                                    .build()))))
            .getField());
    assertEquals(
        "UsageRecords[0].UsageAllocations[0].Tags[0]",
        invalid(
                () ->
                    client.batchMeterUsageBlocking(
                        batch(
                            List.of(
                                record("cust-1", "users", 1).toBuilder()
                                    .usageAllocations(List.of(new UsageAllocation(1, Arrays.asList((Tag) null))))
                                    .build()))))
            .getField());
    assertEquals("ProductCode", invalid(() -> client.meterUsageBlocking(new MeterUsageRequest())).getField());
    assertEquals(
        "UsageDimension",
        invalid(() -> client.meterUsageBlocking(new MeterUsageRequest(Emulator.PRODUCT_CODE, HOUR))).getField());
    assertEquals(
        "RegistrationToken", invalid(() -> client.resolveCustomerBlocking(new ResolveCustomerRequest())).getField());
    assertEquals(
        "PublicKeyVersion",
        invalid(() -> client.registerUsageBlocking(new RegisterUsageRequest(Emulator.PRODUCT_CODE))).getField());
    assertTrue(emulator.requests().isEmpty(), "nothing invalid was sent");
  }

  @Test
  void unpairedSurrogatesNameTheField() {
    // A Java String may hold half of a surrogate pair, which no UTF-8 encoder accepts.
    String bad = "cust-\uD800";
    InvalidInputException first =
        invalid(() -> client.batchMeterUsageBlocking(batch(List.of(record("cust-1", "users", 1), record(bad, "users", 1)))));
    assertEquals("UsageRecords[1].CustomerIdentifier", first.getField());
    // The core's wording, as in every face, with the index in the Java string.
    assertTrue(
        first.getMessage().contains("UsageRecords[1].CustomerIdentifier: is not well-formed Unicode: a lone surrogate at index 5"),
        first.getMessage());
    UsageRecord tagged =
        record("cust-1", "users", 1).toBuilder()
            .usageAllocations(List.of(new UsageAllocation(1, List.of(new Tag("team", "\uDC00a")))))
            .build();
    ExecutionException async =
        assertThrows(ExecutionException.class, () -> client.batchMeterUsageAsync(batch(List.of(tagged))).get());
    InvalidInputException e = assertInstanceOf(InvalidInputException.class, async.getCause());
    assertEquals("UsageRecords[0].UsageAllocations[0].Tags[0].Value", e.getField());
    assertTrue(e.getMessage().contains("surrogate"), e.getMessage());
    assertEquals("InvalidInput", e.getCode());
    assertEquals(
        "RegistrationToken",
        invalid(() -> client.resolveCustomerBlocking(new ResolveCustomerRequest("\uD83D"))).getField());
    assertTrue(emulator.requests().isEmpty(), "nothing was sent");
  }

  @Test
  void emptyListsAndTheTwentySixthRecord() {
    List<UsageRecord> records = new ArrayList<>();
    for (int i = 0; i < 26; i++) records.add(record("cust-" + (i + 1), "users", 1));
    InvalidInputException tooMany = invalid(() -> client.batchMeterUsageBlocking(batch(records)));
    assertEquals("UsageRecords", tooMany.getField());
    assertTrue(tooMany.getMessage().contains("26"), tooMany.getMessage());
    // An empty allocation or tag list is below the model's minimum of one.
    assertEquals(
        "UsageRecords[0].UsageAllocations",
        invalid(
                () ->
                    client.batchMeterUsageBlocking(
                        batch(List.of(record("cust-1", "users", 1).toBuilder().usageAllocations(Collections.emptyList()).build()))))
            .getField());
    assertEquals(
        "UsageAllocations[0].Tags",
        invalid(
                () ->
                    client.meterUsageBlocking(
                        MeterUsageRequest.builder()
                            .productCode(Emulator.PRODUCT_CODE)
                            .timestamp(HOUR)
                            .usageDimension("users")
                            .usageQuantity(1)
                            .usageAllocations(List.of(new UsageAllocation(1, List.of())))
                            .build()))
            .getField());
    assertTrue(emulator.requests().isEmpty());
    // An empty UsageRecords list is what the model allows (0 to 25): sent, nothing billed.
    BatchMeterUsageResponse none = client.batchMeterUsageBlocking(batch(List.of()));
    assertTrue(none.getResults().isEmpty());
    assertTrue(emulator.ledger().isEmpty());
    // Records with an unset list (null) are sent without the member.
    assertEquals(1, client.batchMeterUsageBlocking(batch(List.of(record("cust-1", "users", 1)))).getResults().size());
  }

  @Test
  void outOfRangeValues() {
    assertEquals(
        "UsageRecords[0].Quantity",
        invalid(() -> client.batchMeterUsageBlocking(batch(List.of(record("cust-1", "users", -5))))).getField());
    // The model does not bound timestamps: the extremes reach the service, which refuses
    // them with its own exception (as in every face), and nothing crashes on the way.
    for (Instant extreme : List.of(Instant.MAX, Instant.MIN, Instant.EPOCH)) {
      assertThrows(
          TimestampOutOfBoundsException.class,
          () ->
              client.batchMeterUsageBlocking(
                  batch(List.of(record("cust-1", "users", 1).toBuilder().timestamp(extreme).build()))),
          extreme.toString());
    }
    assertEquals(
        "PublicKeyVersion",
        invalid(() -> client.registerUsageBlocking(new RegisterUsageRequest(Emulator.PRODUCT_CODE, 0))).getField());
  }

  @Test
  void manyJavaThreadsOnOneClient() throws Exception {
    ExecutorService pool = Executors.newFixedThreadPool(8);
    List<Future<String>> results = new ArrayList<>();
    for (int i = 0; i < 200; i++) {
      results.add(
          pool.submit(
              () ->
                  client
                      .resolveCustomerBlocking(new ResolveCustomerRequest(Emulator.REGISTRATION_TOKEN))
                      .getCustomerIdentifier()));
    }
    for (Future<String> f : results) assertEquals("cust-1", f.get(60, TimeUnit.SECONDS));
    pool.shutdown();
    assertEquals(200, emulator.requests().size());
  }
}
