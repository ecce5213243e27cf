package dev.sfmobile.core.bench

import com.google.gson.JsonParser
import dev.sfmobile.core.Bundle
import dev.sfmobile.core.Engine
import dev.sfmobile.core.EngineException
import dev.sfmobile.core.FloatTensor
import dev.sfmobile.core.Golden
import dev.sfmobile.core.IntTensor
import dev.sfmobile.core.TiledDecode
import dev.sfmobile.core.device.Backend
import dev.sfmobile.core.device.BundleCatalog
import dev.sfmobile.core.device.DeviceMemory
import dev.sfmobile.core.device.LoadedEngine
import dev.sfmobile.core.device.ZeroEngine
import dev.sfmobile.core.device.writeTestBundle
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir
import java.io.File
import java.time.OffsetDateTime
import java.time.ZoneOffset

class BenchmarkSessionTest {
    @TempDir
    lateinit var tmp: File

    private val gib = 1024L * 1024L * 1024L

    private inner class FakePlatform(
        val freeBytes: Long = 6 * gib,
        val failLoad: Boolean = false,
        val engine: Engine = ZeroEngine(),
    ) : BenchmarkPlatform {
        var loadedFiles: Map<String, String>? = null
        private var reads = 0

        override val appVersion = "0.1.0"

        override fun device() = DeviceInfo("Google", "Pixel 8 Pro", "Tensor G3", "16", 36, 12000.0)

        override fun thermal() = ThermalReading(30.0 + reads++, 0)

        override fun memory() = DeviceMemory(freeBytes, gib / 2, 12 * gib)

        override fun loadEngine(
            bundle: Bundle,
            backend: Backend,
            modelFiles: Map<String, String>,
        ): LoadedEngine {
            if (failLoad) throw EngineException("NNAPI: graph would fall back to the CPU")
            loadedFiles = modelFiles
            return LoadedEngine(engine, backend.accelerator, "1.27.0")
        }
    }

    private fun session(platform: BenchmarkPlatform) =
        BenchmarkSession(
            platform,
            BundleCatalog(File(tmp, "bundles")),
            File(tmp, "benchmarks"),
            now = { OffsetDateTime.of(2026, 12, 1, 3, 15, 0, 0, ZoneOffset.UTC) },
            peakMemoryMb = { 512.0 },
        )

    private val args = BenchmarkArgs(bundle = "demo", backend = Backend.ORT_NNAPI, runs = 2, warmupRuns = 1, steps = 3)

    @Test
    fun `a session runs warm-up and timed generations and writes its report`() {
        writeTestBundle(File(tmp, "bundles/demo"))
        val platform = FakePlatform()
        val report = session(platform).run(args)
        assertEquals(BenchmarkStatus.OK, report.status, report.error)
        assertEquals(2, report.runs.size)
        assertTrue(report.runs.all { it.unetMs.size == 3 }, "cfg batch 2: one UNet call per step")
        assertEquals(9, (platform.engine as ZeroEngine).unetCalls, "warm-up + 2 runs, 3 steps each")
        assertTrue((platform.engine as ZeroEngine).closed)
        assertEquals("unet.onnx", platform.loadedFiles!!["unet"], "the file ModelFiles resolved")
        assertEquals(BackendInfo("ort-nnapi", "nnapi", "1.27.0"), report.backend)
        assertEquals(Thermal(30.0, 31.0, 0, 0), report.thermal)
        assertEquals(BenchmarkSettings(BenchmarkArgs.DEFAULT_PROMPT, "", 3, 7.5f, 0, 1, 2, 2, "auto", "decoder"), report.settings)
        assertNotNull(report.loadMs)
        val file = File(tmp, "benchmarks/20261201T031500Z-Pixel_8_Pro-ort-nnapi.json")
        val json = JsonParser.parseString(file.readText()).asJsonObject
        assertEquals("ok", json["status"].asString)
        assertEquals("fp32", json.getAsJsonObject("bundle").getAsJsonObject("recipe")["precision"].asString)
        assertNull(json["cooldown"], "no cooldown extras, no cooldown")
    }

    @Test
    fun `a tiling session loads the tile decoder and not the full one, and records the choice`() {
        File(Golden.dir, "bundles/valid-decoder-tile").copyRecursively(File(tmp, "bundles/tiled"))
        for ((choice, decoder) in listOf(null to "decoder_tile", true to "decoder_tile", false to "decoder")) {
            val platform = FakePlatform(engine = TileEngine())
            val report = session(platform).run(args.copy(bundle = "tiled", steps = 2, tileDecoder = choice))
            assertEquals(BenchmarkStatus.OK, report.status, report.error)
            assertEquals(listOf("text_encoder", "unet", decoder), platform.loadedFiles!!.keys.toList(), "choice $choice")
            val engine = platform.engine as TileEngine
            val expected = if (decoder == "decoder") 0 to 3 else 3 * 9 to 0
            assertEquals(expected, engine.tiles to engine.wholes, "warm-up + 2 runs, choice $choice")
            val json = JsonParser.parseString(File(tmp, "benchmarks/${report.sessionId}.json").readText()).asJsonObject
            val settings = json.getAsJsonObject("settings")
            assertEquals(TiledDecode.choiceName(choice), settings["tile_decoder"].asString)
            assertEquals(decoder, settings["decoder"].asString)
            File(tmp, "benchmarks/${report.sessionId}.json").delete()
        }
    }

    @Test
    fun `tiles asked of a bundle without a tile decoder fail the session before loading`() {
        writeTestBundle(File(tmp, "bundles/demo"))
        val platform = FakePlatform()
        val report = session(platform).run(args.copy(tileDecoder = true))
        assertEquals(BenchmarkStatus.FAILED, report.status)
        assertTrue(report.error!!.contains(TiledDecode.NO_TILE_DECODER), report.error)
        assertNull(platform.loadedFiles, "nothing loaded")
        assertEquals("on", report.settings.tileDecoder)
        assertNull(report.settings.decoder)
    }

    /** Zeros from every component; counts tile and whole decodes (the golden tiled bundle: 8x8 latent, 4x4 tiles). */
    private class TileEngine : Engine {
        var tiles = 0
        var wholes = 0

        override fun encodeText(tokenIds: IntTensor) = FloatTensor(intArrayOf(1, 77, 32), FloatArray(77 * 32))

        override fun predict(
            latents: FloatTensor,
            timestep: Float,
            text: FloatTensor,
            guidance: Float?,
        ) = FloatTensor(latents.shape, FloatArray(latents.data.size))

        override fun decode(latents: FloatTensor): FloatTensor {
            wholes++
            return FloatTensor(intArrayOf(1, 3, 64, 64), FloatArray(3 * 64 * 64))
        }

        override fun decodeTile(latents: FloatTensor): FloatTensor {
            tiles++
            return FloatTensor(intArrayOf(1, 3, 32, 32), FloatArray(3 * 32 * 32))
        }

        override fun close() {}
    }

    @Test
    fun `the host's session id names the file and its cooldown is written as given`() {
        writeTestBundle(File(tmp, "bundles/demo"))
        val cooldown = HostCooldown(thermalStatusBefore = 3, thermalStatusAfter = 1, waitedS = 600.0)
        val report = session(FakePlatform()).run(args.copy(sessionId = "20261201T031500Z-host1-ort-nnapi", cooldown = cooldown))
        val json = JsonParser.parseString(File(tmp, "benchmarks/20261201T031500Z-host1-ort-nnapi.json").readText()).asJsonObject
        assertEquals("20261201T031500Z-host1-ort-nnapi", json["session_id"].asString)
        assertEquals(
            JsonParser.parseString("""{"thermal_status_before": 3, "thermal_status_after": 1, "waited_s": 600.0}"""),
            json["cooldown"],
        )
        assertEquals(cooldown, report.cooldown)
    }

    @Test
    fun `a bundle that does not fit in memory is refused before loading`() {
        writeTestBundle(File(tmp, "bundles/demo"))
        val platform = FakePlatform(freeBytes = gib / 2)
        val report = session(platform).run(args)
        assertEquals(BenchmarkStatus.FAILED, report.status)
        assertTrue(report.error!!.startsWith("bundle 'demo' needs about"), report.error)
        assertNull(platform.loadedFiles)
        assertNull(report.loadMs)
        assertTrue(File(tmp, "benchmarks/${report.sessionId}.json").isFile)
    }

    @Test
    fun `a missing bundle and an engine that fails to load still give a report`() {
        val missing = session(FakePlatform()).run(args)
        assertEquals(BenchmarkStatus.FAILED, missing.status)
        assertTrue(missing.error!!.startsWith("no bundle 'demo'"), missing.error)
        assertEquals(0, missing.bundle.recipe.size())
        writeTestBundle(File(tmp, "bundles/demo"))
        val failing = session(FakePlatform(failLoad = true)).run(args.copy(sessionId = "second"))
        assertEquals("NNAPI: graph would fall back to the CPU", failing.error)
        assertTrue(File(tmp, "benchmarks/second.json").isFile)
    }

    @Test
    fun `a bundle changed after export fails verification`() {
        val dir = writeTestBundle(File(tmp, "bundles/demo"))
        File(dir, "unet.onnx").writeText("unet model bytez")
        val report = session(FakePlatform()).run(args)
        assertEquals(BenchmarkStatus.FAILED, report.status)
        assertTrue(report.error!!.contains("sha256"), report.error)
        assertFalse(report.bundle.manifestSha256.isNullOrEmpty())
    }
}
