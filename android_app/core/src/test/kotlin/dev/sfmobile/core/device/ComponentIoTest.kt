package dev.sfmobile.core.device

import dev.sfmobile.core.BundleException
import dev.sfmobile.core.FloatTensor
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class ComponentIoTest {
    @Test
    fun `a manifest with export's tensor names passes and its unet batch is read`() {
        val m = manifest()
        ComponentIo.check(m)
        assertEquals(2, ComponentIo.unetBatch(m))
    }

    @Test
    fun `a guidance-input manifest needs the guidance input`() {
        val text = manifestText().replace("\"input\": false", "\"input\": true")
        val m =
            dev.sfmobile.core.Manifest
                .parse(text, "m.json")
        val error = assertThrows(BundleException::class.java) { ComponentIo.check(m) }
        assertTrue(error.message!!.contains("engines need [guidance, sample, text_embeddings, timestep]"), error.message)
    }

    @Test
    fun `rows are repeated to pad a static batch and dropped to slice it`() {
        val one = FloatTensor(intArrayOf(1, 2), floatArrayOf(1f, 2f))
        val two = fitRows(one, 2)
        assertArrayEquals(intArrayOf(2, 2), two.shape)
        assertArrayEquals(floatArrayOf(1f, 2f, 1f, 2f), two.data)
        val back = fitRows(FloatTensor(intArrayOf(2, 2), floatArrayOf(1f, 2f, 3f, 4f)), 1)
        assertArrayEquals(floatArrayOf(1f, 2f), back.data)
        assertTrue(fitRows(one, 1) === one)
    }

    @Test
    fun `unet inputs fill the static batch and broadcast timestep and guidance`() {
        val latents = FloatTensor(intArrayOf(1, 2), floatArrayOf(1f, 2f))
        val text = FloatTensor(intArrayOf(1, 1), floatArrayOf(9f))
        val inputs = ComponentIo.unetInputs(latents, 981f, text, 4.5f, batch = 2)
        assertEquals(listOf("sample", "timestep", "text_embeddings", "guidance"), inputs.keys.toList())
        assertArrayEquals(floatArrayOf(1f, 2f, 1f, 2f), inputs.getValue("sample").data)
        assertArrayEquals(floatArrayOf(981f, 981f), inputs.getValue("timestep").data)
        assertArrayEquals(floatArrayOf(9f, 9f), inputs.getValue("text_embeddings").data)
        assertArrayEquals(floatArrayOf(4.5f, 4.5f), inputs.getValue("guidance").data)
        assertEquals(setOf("sample", "timestep", "text_embeddings"), ComponentIo.unetInputs(latents, 1f, text, null, 1).keys)
    }
}
