package meta

const sep = "\x00"

func repoKey(repo string) []byte { return []byte("r/" + repo) }

func blobKey(d Digest) []byte { return []byte("b/" + string(d)) }

func linkKey(repo string, d Digest) []byte { return []byte("l/" + repo + sep + string(d)) }

func manifestKey(repo string, d Digest) []byte { return []byte("m/" + repo + sep + string(d)) }

func tagPrefix(repo string) []byte { return []byte("t/" + repo + sep) }

func tagKey(repo, tag string) []byte { return []byte("t/" + repo + sep + tag) }

func tagIndexPrefix(repo string, d Digest) []byte {
	return []byte("g/" + repo + sep + string(d) + sep)
}

func tagIndexKey(repo string, d Digest, tag string) []byte {
	return []byte("g/" + repo + sep + string(d) + sep + tag)
}

func referrerPrefix(repo string, subject Digest) []byte {
	return []byte("f/" + repo + sep + string(subject) + sep)
}

func referrerKey(repo string, subject, d Digest) []byte {
	return []byte("f/" + repo + sep + string(subject) + sep + string(d))
}

func userKey(name string) []byte                 { return []byte("u/" + name) }
func projectKey(name string) []byte              { return []byte("p/" + name) }
func memberPrefix(project string) []byte         { return []byte("pm/" + project + sep) }
func memberKey(project, user string) []byte      { return []byte("pm/" + project + sep + user) }
func userProjectPrefix(user string) []byte       { return []byte("um/" + user + sep) }
func userProjectKey(user, project string) []byte { return []byte("um/" + user + sep + project) }
func workspaceKey(name string) []byte            { return []byte("w/" + name) }
func projectWorkspacePrefix(project string) []byte {
	return []byte("pw/" + project + sep)
}
func projectWorkspaceKey(project, ws string) []byte { return []byte("pw/" + project + sep + ws) }
func robotPrefix(project string) []byte             { return []byte("o/" + project + sep) }
func robotKey(project, name string) []byte          { return []byte("o/" + project + sep + name) }
func signingKeyKey(id string) []byte                { return []byte("k/" + id) }

func blobRepoPrefix(d Digest) []byte           { return []byte("bl/" + string(d) + sep) }
func blobRepoKey(d Digest, repo string) []byte { return []byte("bl/" + string(d) + sep + repo) }

func blobNodePrefix(d Digest) []byte           { return []byte("bn/" + string(d) + sep) }
func blobNodeKey(d Digest, node string) []byte { return []byte("bn/" + string(d) + sep + node) }
