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
}
