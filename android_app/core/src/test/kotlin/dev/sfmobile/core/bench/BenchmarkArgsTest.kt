package dev.sfmobile.core.bench

import dev.sfmobile.core.GenerationRequest
import dev.sfmobile.core.InputException
import dev.sfmobile.core.device.Backend
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import java.time.OffsetDateTime
import java.time.ZoneOffset

class BenchmarkArgsTest {
    private fun parse(
        bundle: String? = "demo",
        backend: String? = "ort-qnn",
        runs: Int? = null,
        warmup: Int? = null,
        steps: Int? = null,
        guidance: Float? = null,
        seed: Long? = null,
        session: String? = null,
        cooldown: Triple<Int?, Int?, Float?> = Triple(null, null, null),
        tileDecoder: String? = null,
    ) = BenchmarkArgs.parse(
        bundle,
        backend,
        runs,
        warmup,
        steps,
        guidance,
        null,
        null,
        seed,
        session,
        cooldown.first,
        cooldown.second,
        cooldown.third,
        tileDecoder,
    )

    @Test
    fun `extras left out take the defaults and the manifest's steps and guidance`() {
        val args = parse()
        assertEquals(BenchmarkArgs(bundle = "demo", backend = Backend.ORT_QNN), args)
        assertEquals(
            GenerationRequest(BenchmarkArgs.DEFAULT_PROMPT, "", steps = 8, guidance = 7.5f, seed = 0),
            args.request(defaultSteps = 8, defaultGuidance = 7.5f),
        )
        val given = parse(steps = 4, guidance = 1f, seed = 42, runs = 3, warmup = 0)
        assertEquals(GenerationRequest(BenchmarkArgs.DEFAULT_PROMPT, "", 4, 1f, 42), given.request(8, 7.5f))
        assertEquals(3 to 0, given.runs to given.warmupRuns)
    }

    @Test
    fun `each bad extra is refused naming it`() {
        val cases =
            mapOf<String, () -> Unit>(
                "--es bundle" to { parse(bundle = null) },
                "--es backend" to { parse(backend = "") },
                "unknown backend 'gpu'" to { parse(backend = "gpu") },
                "--ei runs must be >= 1, got 0" to { parse(runs = 0) },
                "--ei warmup must be >= 0, got -1" to { parse(warmup = -1) },
                "--ei steps must be >= 1, got 0" to { parse(steps = 0) },
                "--ef guidance must be finite" to { parse(guidance = Float.NaN) },
                "--el seed must be >= 0, got -3" to { parse(seed = -3) },
                "--es session_id must match" to { parse(session = "a/b") },
                "missing extra: --ei cooldown_status_after" to { parse(cooldown = Triple(2, null, 30f)) },
                "--ef cooldown_waited_s must be >= 0, got -1.0" to { parse(cooldown = Triple(2, 0, -1f)) },
                "--ei cooldown_status_before must be >= 0, got -2" to { parse(cooldown = Triple(-2, 0, 1f)) },
                "--es tile_decoder must be one of auto|on|off, got 'true'" to { parse(tileDecoder = "true") },
                "--es tile_decoder must be one of auto|on|off, got 'ON'" to { parse(tileDecoder = "ON") },
            )
        for ((expected, call) in cases) {
            val error = assertThrows(InputException::class.java, { call() }, expected)
            assertTrue(error.message!!.contains(expected), "${error.message} lacks '$expected'")
        }
    }

    @Test
    fun `tile_decoder auto, on and off are the Pipeline's null, true and false, and left out it is auto`() {
        assertEquals(listOf(null, true, false, null), listOf("auto", "on", "off", null).map { parse(tileDecoder = it).tileDecoder })
    }

    @Test
    fun `the host's session id and cooldown extras are kept as given`() {
        val args = parse(session = "20261201T031500Z-a1b2c3-ort-qnn", cooldown = Triple(2, 0, 95.3f))
        assertEquals("20261201T031500Z-a1b2c3-ort-qnn", args.sessionId)
        assertEquals(HostCooldown(thermalStatusBefore = 2, thermalStatusAfter = 0, waitedS = 95.3), args.cooldown)
        assertEquals(null, parse().cooldown)
    }

    @Test
    fun `session ids are the UTC start, the model and the backend, safe as a file name`() {
        val start = OffsetDateTime.of(2026, 12, 1, 4, 15, 0, 0, ZoneOffset.ofHours(1))
        assertEquals("20261201T031500Z-SM-S911B-ort-qnn", SessionIds.of(start, "SM-S911B", "ort-qnn"))
        assertEquals("20261201T031500Z-Pixel_8_Pro-litert-gpu", SessionIds.of(start, "Pixel 8 Pro", "litert-gpu"))
        val long = SessionIds.of(start, "x".repeat(100), "litert-npu")
        assertEquals(64, long.length)
        assertTrue(SessionIds.isValid(long) && long.endsWith("-litert-npu"), long)
        assertEquals("2026-12-01T04:15:00+01:00", SessionIds.timestamp(start.plusNanos(5)))
    }
}
