package dev.sfmobile.core.bench

import java.io.File

/** Files of the repository, found by walking up from the working directory (tests run from any folder in it). */
internal object RepoFiles {
    fun find(relative: String): File {
        var dir: File? = File("").absoluteFile
        while (dir != null) {
            val candidate = File(dir, relative)
            if (candidate.exists()) return candidate
            dir = dir.parentFile
        }
        error("$relative not found above ${File("").absolutePath}")
    }

    /** Set SFCORE_UPDATE_GOLDEN=1 to rewrite Kotlin-written golden files instead of comparing with them. */
    val updateGolden: Boolean get() = System.getenv("SFCORE_UPDATE_GOLDEN") == "1"
}
