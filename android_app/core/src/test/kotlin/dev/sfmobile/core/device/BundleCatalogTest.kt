package dev.sfmobile.core.device

import dev.sfmobile.core.BundleException
import dev.sfmobile.core.InputException
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir
import java.io.File

class BundleCatalogTest {
    @TempDir
    lateinit var root: File

    private fun bundle(
        name: String,
        bytes: Int = 10,
    ): File =
        File(root, name).apply {
            mkdirs()
            File(this, "manifest.json").writeText("{}")
            File(this, "tokenizer").mkdirs()
            File(this, "tokenizer/vocab.json").writeBytes(ByteArray(bytes))
        }

    @Test
    fun `lists bundle folders by name with their size, skipping partial exports and other entries`() {
        bundle("zeta", 5)
        bundle("alpha", 100)
        bundle(".alpha.partial-123")
        File(root, "notes").mkdirs()
        File(root, "loose.onnx").writeText("x")
        val entries = BundleCatalog(root).list()
        assertEquals(listOf("alpha", "zeta"), entries.map { it.name })
        assertEquals(listOf(102L, 7L), entries.map { it.bytes })
    }

    @Test
    fun `a missing root lists nothing`() {
        assertEquals(listOf<BundleEntry>(), BundleCatalog(File(root, "absent")).list())
    }

    @Test
    fun `find returns a bundle and names the ones present when it is missing`() {
        bundle("demo")
        assertEquals(File(root, "demo"), BundleCatalog(root).find("demo").dir)
        val error = assertThrows(BundleException::class.java) { BundleCatalog(root).find("sd15") }
        assertTrue(error.message!!.contains("no bundle 'sd15'"), error.message)
        assertTrue(error.message!!.endsWith("bundles there: demo"), error.message)
    }

    @Test
    fun `find refuses names that leave the bundles folder`() {
        for (name in listOf("../demo", "a/b", ".hidden", "")) {
            assertThrows(InputException::class.java, { BundleCatalog(root).find(name) }, name)
        }
    }

    @Test
    fun `summaries read each manifest and name the problem of a broken one`() {
        writeTestBundle(File(root, "demo"))
        bundle("broken")
        val (broken, demo) = BundleCatalog(root).summaries()
        assertEquals(BundleSummary(demo.entry, "onnx", 8, 7.5), demo)
        assertTrue(broken.problem!!.contains("broken/manifest.json: manifest invalid"), broken.problem)
    }

    @Test
    fun `open refuses a bundle that does not fit before reading its files`() {
        writeTestBundle(File(root, "demo"))
        File(root, "demo/unet.onnx").writeText("unet model bytez")
        var found: BundleEntry? = null
        val tiny = DeviceMemory(availableBytes = 1000, thresholdBytes = 0, totalBytes = 1000)
        val error = assertThrows(BundleException::class.java) { BundleCatalog(root).open("demo", tiny) { found = it } }
        assertTrue(error.message!!.startsWith("bundle 'demo' needs about"), error.message)
        assertEquals("demo", found?.name)
        val roomy = DeviceMemory(availableBytes = 1L shl 40, thresholdBytes = 0, totalBytes = 1L shl 40)
        val changed = assertThrows(BundleException::class.java) { BundleCatalog(root).open("demo", roomy) }
        assertTrue(changed.message!!.contains("sha256"), changed.message)
    }
}
