package dev.sfmobile.core

import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import java.io.File
import kotlin.math.abs
import kotlin.test.assertFailsWith

class DdimSchedulerTest {
    private val index = Golden.json("scheduler/index.json")

    private fun config(json: com.google.gson.JsonObject) =
        SchedulerConfig(
            json.get("num_train_timesteps").asInt,
            json.get("beta_start").asDouble,
            json.get("beta_end").asDouble,
            json.get("beta_schedule").asString,
            json.get("prediction_type").asString,
            json.get("timestep_spacing").asString,
            json.get("steps_offset").asInt,
            json.get("set_alpha_to_one").asBoolean,
            json.get("clip_sample").asBoolean,
            json.get("clip_sample_range").asDouble,
            json.get("default_steps").asInt,
            json.get("default_guidance").asDouble,
        )

    @Test
    fun `timesteps and trajectories match Python for every golden config`() {
        val start = index.getAsJsonObject("initial_latents")
        val shape = start.getAsJsonArray("shape").map { it.asInt }.toIntArray()
        val cases = index.getAsJsonArray("cases").map { it.asJsonObject }
        assertEquals(5, cases.size)
        for (case in cases) {
            val name = case.get("name").asString
            val scheduler = DdimScheduler(config(case.getAsJsonObject("config")))
            val steps = case.get("steps").asInt
            val timesteps = scheduler.timesteps(steps)
            assertArrayEquals(case.getAsJsonArray("timesteps").map { it.asInt }.toIntArray(), timesteps, name)
            val firstLast = case.getAsJsonArray("alphas_cumprod_first_last").map { it.asFloat }
            assertEquals(firstLast, listOf(scheduler.alphasCumprod.first(), scheduler.alphasCumprod.last()), name)
            val golden = Golden.floats(File(Golden.dir, "scheduler/" + case.get("file").asString))
            var sample = Noise.gaussian(start.get("noise_seed").asLong, shape).data
            for ((i, t) in timesteps.withIndex()) {
                val output = FloatArray(sample.size) { sample[it] * 0.5f + 0.001f * t.toFloat() }
                sample = scheduler.step(output, t, sample, steps)
                for (k in sample.indices) {
                    val expected = golden[i * sample.size + k]
                    assertTrue(abs(expected - sample[k]) <= 1e-6f * maxOf(1f, abs(expected)), "$name step $i value $k")
                }
            }
        }
    }

    @Test
    fun `SD-1 sanity values and timesteps of docs-scheduler-md`() {
        val scheduler = DdimScheduler()
        assertEquals(0x3f7fc84b, scheduler.alphasCumprod[0].toRawBits())
        assertEquals(0x3b98b3b6, scheduler.alphasCumprod[999].toRawBits())
        assertArrayEquals(intArrayOf(876, 751, 626, 501, 376, 251, 126, 1), scheduler.timesteps(8))
        val trailing = DdimScheduler(SchedulerConfig(timestepSpacing = "trailing"))
        assertArrayEquals(intArrayOf(999, 874, 749, 624, 499, 374, 249, 124), trailing.timesteps(8))
        val linspace = DdimScheduler(SchedulerConfig(timestepSpacing = "linspace"))
        assertArrayEquals(intArrayOf(999, 856, 714, 571, 428, 285, 143, 0), linspace.timesteps(8))
    }

    @Test
    fun `bad configs and step counts are refused naming the field`() {
        assertTrue("beta_end" in assertFailsWith<ConfigException> { SchedulerConfig(betaEnd = 2.0) }.message!!)
        assertTrue("prediction_type" in assertFailsWith<ConfigException> { SchedulerConfig(predictionType = "sample") }.message!!)
        assertTrue("num_steps=0" in assertFailsWith<InputException> { DdimScheduler().timesteps(0) }.message!!)
        assertFailsWith<InputException> { DdimScheduler().timesteps(1000) } // leading + offset 1 leaves [0, T)
    }
}
